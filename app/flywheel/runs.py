"""Iteration run records: one row per run in the store's database (`app.store.run_store`).

A run is what `GET /v1/flywheel/runs` lists: its status, each step's outcome and timings. The
server, the CLI and Celery workers on any machine pointed at the same database (PostgreSQL in a
multi-machine deployment) read and update the same records; two workers recording steps of one
run at once both keep their entries. Records from before the database (`<data dir>/runs/*.json`)
are moved in on first open.
"""
from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from sqlalchemy import Engine

from app.core.data_dir import DataDir


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
MAX_RUN_ID_CHARS = 128


class RunRecords:
    """The run records of one database. Open with `open_runs`."""

    def __init__(self, store):
        self.store = store  # app.store.run_store.SqlRunStore

    def read(self, run_id: str) -> dict | None:
        return self.store.read(_checked(run_id))

    def list(self, statuses: Iterable[RunStatus] | None = None) -> list[dict]:
        """Every run (or those in `statuses`), newest first."""
        return self.store.list(None if statuses is None else [str(s) for s in statuses])

    def update(self, run_id: str, **fields) -> dict:
        """Merge `fields` into the run record (creating it, queued) in one transaction: `steps`
        entries join the run's steps, other fields replace the stored ones."""
        if "status" in fields:
            fields["status"] = RunStatus(fields["status"])  # ValueError for an unknown status
        return self.store.merge(_checked(run_id), fields, initial_status=RunStatus.QUEUED)

    def beat(self, run_id: str) -> None:
        """The run's current step is alive (app.flywheel.step_claims)."""
        self.store.beat(_checked(run_id))

    def claim_recovery(self, run_id: str, attempt: str) -> bool:
        """True for exactly one caller per interrupted step `attempt` (app.flywheel.recovery)."""
        return self.store.claim_recovery(_checked(run_id), attempt)


def open_runs(data: DataDir, *, schema: str | None = None,
              engine: Engine | None = None) -> RunRecords:
    """The run records in `data`'s database (or on `engine`, already migrated: the API server's
    store), after moving in any JSON records still under `data.runs_dir`."""
    from app.core.engines import shared_engine
    from app.store.run_store import SqlRunStore, import_run_files

    if engine is None:
        engine = shared_engine(data.database_url, schema)
    if data.runs_dir.is_dir():
        import_run_files(engine, data.runs_dir)
    return RunRecords(SqlRunStore(engine))


def _checked(run_id: str) -> str:
    if not run_id or len(run_id) > MAX_RUN_ID_CHARS:
        raise ValueError(f"bad run id {run_id!r}: 1 to {MAX_RUN_ID_CHARS} characters")
    return run_id
