"""When to iterate: enough new feedback since the last trigger, or a stale unfinished iteration.

The state of the last trigger (feedback count, run id, time) is kept in
`<data dir>/flywheel_trigger.json`, replaced atomically. Feedback itself lives in the store and
every snapshot covers all of it, so a lost iteration loses no feedback. Workers resume a run whose
worker died mid-step within seconds (`app.flywheel.recovery`); as a last resort, a run that stays
unfinished for `stale_run_s` makes the next beat trigger a fresh iteration.
"""
from __future__ import annotations

import json
import os
import tempfile
import time

from app.flywheel.runs import UNFINISHED, open_runs
from app.flywheel.settings import FlywheelSettings

STATE_FILE = "flywheel_trigger.json"


def feedback_count(settings: FlywheelSettings) -> int:
    from app.store.crud_flywheel import count_feedback
    from app.store.session import open_store

    store = open_store(settings.database_url)
    try:
        with store.transaction() as session:
            return count_feedback(session)
    finally:
        store.close()


def _read_state(settings: FlywheelSettings) -> dict:
    path = settings.data_dir / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else {"feedback_count": 0}


def record_trigger(settings: FlywheelSettings, count: int, run_id: str | None) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".trigger.", dir=settings.data_dir)
    with os.fdopen(fd, "w") as handle:
        json.dump({"feedback_count": count, "run_id": run_id, "at": time.time()}, handle)
    os.replace(tmp, settings.data_dir / STATE_FILE)


def _stale(settings: FlywheelSettings, state: dict, stale_run_s: float) -> bool:
    run_id = state.get("run_id")
    if not run_id:
        return False
    record = open_runs(settings.data).read(run_id)
    return (record is None or record["status"] in UNFINISHED) and \
        time.time() - state.get("at", 0) > stale_run_s


def claim_new_feedback(settings: FlywheelSettings, stale_run_s: float = 6 * 3600) -> int | None:
    """Feedback items to iterate on now (new since the last trigger; all of it when the last
    triggered run went stale), or None when it is not time yet. The caller records the trigger."""
    state = _read_state(settings)
    now = feedback_count(settings)
    if _stale(settings, state, stale_run_s):
        return max(now, 1)  # every snapshot covers all feedback
    if now - state["feedback_count"] < settings.min_new_feedback:
        return None
    return now - state["feedback_count"]
