"""Recovery of iterations whose worker died mid-step.

Each step task records, before it runs, which step of which run it is working on, with its
payload, host and pid, and keeps its heartbeat in the run record (in the database) fresh while it
runs (`app.flywheel.step_claims`), so a worker on any machine can notice it. A step whose worker is
gone — its pid no longer exists on this host, or its heartbeat is older than
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

from app.core.data_dir import DataDir
from app.flywheel.payload import RunPayload
from app.flywheel.pipeline import iteration_chain
from app.flywheel.runs import UNFINISHED, RunRecords, open_runs

logger = logging.getLogger(__name__)
# Heartbeats are written with the worker's clock and read with the recoverer's, possibly on
# another machine: their clocks must agree to well within this (NTP does).
STALE_S = 60.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_orphaned(record: dict, stale_s: float = STALE_S) -> bool:
    current = record.get("current")
    if record.get("status") not in UNFINISHED or not current:
        return False
    if current["host"] == socket.gethostname() and not _pid_alive(current["pid"]):
        return True
    last_beat = max(record.get("heartbeat_at") or 0.0, current["started_at"])
    return time.time() - last_beat > stale_s


def _attempt(record: dict) -> str:
    """Names one interrupted step attempt: recovered once, however many workers notice it."""
    current = record["current"]
    return f"{current['step']}.{current['host']}.{current['pid']}.{current['started_at']}"


def recover_orphaned_runs(app, records: RunRecords, stale_s: float = STALE_S) -> list[str]:
    """Re-enqueue every orphaned run from its interrupted step; returns their run ids."""
    recovered = []
    for record in records.list(statuses=UNFINISHED):
        if not is_orphaned(record, stale_s) or \
                not records.claim_recovery(record["id"], _attempt(record)):
            continue
        current = record["current"]
        logger.warning("run %s: worker %s:%s died in step %s; re-enqueuing from that step",
                       record["id"], current["host"], current["pid"], current["step"])
        payload = RunPayload.from_dict(current["payload"])
        iteration_chain(app, payload, first_step=current["step"]).apply_async()
        recovered.append(record["id"])
    return recovered


def start_recovery_loop(app, data: DataDir, interval_s: float = 5.0,
                        stale_s: float = STALE_S) -> threading.Thread:
    """Check for orphaned runs now and every `interval_s` (a worker calls this when ready)."""
    def loop() -> None:
        while True:
            try:
                recover_orphaned_runs(app, open_runs(data), stale_s)
            except Exception:  # a bad record must not stop recovery of the others
                logger.exception("flywheel run recovery failed")
            time.sleep(interval_s)

    thread = threading.Thread(target=loop, name="flywheel-recovery", daemon=True)
    thread.start()
    return thread
