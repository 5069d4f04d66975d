"""What a running step records so a dead worker can be noticed: the claim and the heartbeat.

A step task claims its step before it runs (`claim_step`: step name, host, pid, and the payload
it starts from, in the run record), touches `runs/.<run id>.heartbeat` every `HEARTBEAT_S` while
it runs (`heartbeat`), and releases the claim when it ends (`release_step`).
`app.flywheel.recovery` reads these to find steps whose worker is gone; this module knows nothing
about re-enqueueing.
"""
from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from pathlib import Path

from app.flywheel import runs
from app.flywheel.payload import RunPayload
from app.flywheel.runs import RunStatus

HEARTBEAT_S = 2.0


def heartbeat_file(runs_dir: Path, run_id: str) -> Path:
    return Path(runs_dir) / f".{run_id}.heartbeat"


def claim_step(runs_dir: Path, run_id: str, step: str, payload: RunPayload) -> None:
    """Record that this process now runs `step` of `run_id` starting from `payload`."""
    runs.update_run(runs_dir, run_id, status=RunStatus.RUNNING, current={
        "step": step, "host": socket.gethostname(), "pid": os.getpid(),
        "started_at": time.time(), "payload": payload.to_dict()})
    heartbeat_file(runs_dir, run_id).touch()


def release_step(runs_dir: Path, run_id: str, **fields) -> None:
    """The step ended (done, or failed with `fields` saying how): nothing to recover."""
    runs.update_run(runs_dir, run_id, current=None, **fields)


@contextlib.contextmanager
def heartbeat(runs_dir: Path, run_id: str, interval_s: float = HEARTBEAT_S):
    """Touch the run's heartbeat file every `interval_s` while the body runs."""
    path = heartbeat_file(runs_dir, run_id)
    done = threading.Event()

    def beat() -> None:
        while not done.wait(interval_s):
            with contextlib.suppress(OSError):
                path.touch()

    thread = threading.Thread(target=beat, name=f"heartbeat-{run_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
