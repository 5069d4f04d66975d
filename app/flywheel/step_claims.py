"""What a running step records so a dead worker can be noticed: the claim and the heartbeat.

A step task claims its step before it runs (`claim_step`: step name, host, pid, and the payload
it starts from, in the run record), refreshes the run's `heartbeat_at` in the database every
`HEARTBEAT_S` while it runs (`heartbeat`), and releases the claim when it ends (`release_step`).
Both live in the run record, so a worker on another machine sees them.
`app.flywheel.recovery` reads these to find steps whose worker is gone; this module knows nothing
about re-enqueueing.
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time

from app.flywheel.payload import RunPayload
from app.flywheel.runs import RunRecords, RunStatus

logger = logging.getLogger(__name__)
HEARTBEAT_S = 2.0


def claim_step(records: RunRecords, run_id: str, step: str, payload: RunPayload) -> None:
    """Record that this process now runs `step` of `run_id` starting from `payload`."""
    records.update(run_id, status=RunStatus.RUNNING, current={
        "step": step, "host": socket.gethostname(), "pid": os.getpid(),
        "started_at": time.time(), "payload": payload.to_dict()})
    records.beat(run_id)


def release_step(records: RunRecords, run_id: str, **fields) -> None:
    """The step ended (done, or failed with `fields` saying how): nothing to recover."""
    records.update(run_id, current=None, **fields)


@contextlib.contextmanager
def heartbeat(records: RunRecords, run_id: str, interval_s: float = HEARTBEAT_S):
    """Refresh the run's heartbeat every `interval_s` while the body runs."""
    done = threading.Event()

    def beat() -> None:
        while not done.wait(interval_s):
            try:
                records.beat(run_id)
            except Exception:  # noqa: BLE001 - a missed beat is retried; the step goes on
                logger.warning("run %s: heartbeat not recorded", run_id, exc_info=True)

    thread = threading.Thread(target=beat, name=f"heartbeat-{run_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
