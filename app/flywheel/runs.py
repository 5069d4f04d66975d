"""Iteration run records: one JSON file per run under `<data dir>/runs/`, written atomically.

A run is what `GET /v1/flywheel/runs` lists: its status, each step's outcome and timings.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from enum import StrEnum
from pathlib import Path


class RunStatus(StrEnum):
    """Where an iteration run is. A `str` enum: run records and API responses carry the value."""
    QUEUED = "queued"  # enqueued (or created in process), no step started yet
    RUNNING = "running"  # a step is running or the next one is queued
    PROMOTED = "promoted"  # the candidate became production
    REJECTED = "rejected"  # the gate or the canary turned the candidate down
    FAILED = "failed"  # a step raised (after its retries)
    SKIPPED = "skipped"  # nothing to learn from; no candidate was trained


# a run in one of these has not ended yet (its worker may have died: see app.flywheel.recovery)
UNFINISHED = frozenset({RunStatus.QUEUED, RunStatus.RUNNING})


def _path(runs_dir: Path, run_id: str) -> Path:
    if not run_id or "/" in run_id or run_id.startswith("."):
        raise ValueError(f"bad run id {run_id!r}")
    return Path(runs_dir) / f"{run_id}.json"


def read_run(runs_dir: Path, run_id: str) -> dict | None:
    path = _path(runs_dir, run_id)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def update_run(runs_dir: Path, run_id: str, **fields) -> dict:
    """Merge `fields` into the run record (creating it) and write it atomically."""
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    record = read_run(runs_dir, run_id) or {"id": run_id, "status": RunStatus.QUEUED,
                                            "created_at": time.time(), "steps": {}}
    steps = fields.pop("steps", None)
    record.update(fields)
    if steps:
        record["steps"].update(steps)
    record["updated_at"] = time.time()
    fd, tmp = tempfile.mkstemp(prefix=f".{run_id}.", dir=runs_dir)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=2, default=str)
    os.replace(tmp, _path(runs_dir, run_id))
    return record


def list_runs(runs_dir: Path) -> list[dict]:
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    runs = [json.loads(p.read_text(encoding="utf-8")) for p in runs_dir.glob("*.json")]
    return sorted(runs, key=lambda r: r.get("created_at", 0), reverse=True)
