"""Recovery of iterations whose worker died mid-step.

Each step task records, before it runs, which step of which run it is working on, with its payload,
host and pid, and keeps a heartbeat file fresh while it runs (`app.flywheel.step_claims`). A step
whose worker is gone — its pid no longer exists on this host, or its heartbeat is older than
`stale_s` — is re-enqueued from that step with the payload it started with: the steps before it
are not redone (their results are in the payload), and the interrupted step itself is idempotent
by its inputs.

Why not rely on acks_late alone: the embedded SQLite broker (kombu's SQLAlchemy transport) marks a
message invisible when a worker fetches it and never makes it visible again if that worker is
killed, so nothing redelivers it. Redis redelivers after its visibility timeout, hours later;
this recovery acts within seconds, and a late redelivery then finds the work done.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path

from app.flywheel import runs
from app.flywheel.payload import RunPayload
from app.flywheel.pipeline import iteration_chain
from app.flywheel.runs import UNFINISHED
from app.flywheel.step_claims import heartbeat_file

logger = logging.getLogger(__name__)
STALE_S = 60.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_orphaned(runs_dir: Path, record: dict, stale_s: float = STALE_S) -> bool:
    current = record.get("current")
    if record.get("status") not in UNFINISHED or not current:
        return False
    if current["host"] == socket.gethostname() and not _pid_alive(current["pid"]):
        return True
    path = heartbeat_file(runs_dir, record["id"])
    last_beat = path.stat().st_mtime if path.exists() else current["started_at"]
    return time.time() - last_beat > stale_s


def _claim_recovery(runs_dir: Path, record: dict) -> bool:
    """Exactly one recoverer wins per interrupted step attempt (an exclusive marker file)."""
    current = record["current"]
    attempt = f"{record['id']}.{current['step']}.{current['host']}.{current['pid']}"
    marker = Path(runs_dir) / f".{attempt}.recovered"
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def recover_orphaned_runs(app, runs_dir: Path, stale_s: float = STALE_S) -> list[str]:
    """Re-enqueue every orphaned run from its interrupted step; returns their run ids."""
    recovered = []
    for record in runs.list_runs(runs_dir):
        if not is_orphaned(runs_dir, record, stale_s) or not _claim_recovery(runs_dir, record):
            continue
        current = record["current"]
        logger.warning("run %s: worker %s:%s died in step %s; re-enqueuing from that step",
                       record["id"], current["host"], current["pid"], current["step"])
        runs.update_run(runs_dir, record["id"], recoveries=record.get("recoveries", 0) + 1)
        payload = RunPayload.from_dict(current["payload"])
        iteration_chain(app, payload, first_step=current["step"]).apply_async()
        recovered.append(record["id"])
    return recovered


def start_recovery_loop(app, runs_dir: Path, interval_s: float = 5.0,
                        stale_s: float = STALE_S) -> threading.Thread:
    """Check for orphaned runs now and every `interval_s` (a worker calls this when ready)."""
    def loop() -> None:
        while True:
            try:
                recover_orphaned_runs(app, runs_dir, stale_s)
            except Exception:  # a bad record must not stop recovery of the others
                logger.exception("flywheel run recovery failed")
            time.sleep(interval_s)

    thread = threading.Thread(target=loop, name="flywheel-recovery", daemon=True)
    thread.start()
    return thread
