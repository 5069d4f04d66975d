"""When to iterate: enough new feedback since the last iteration that the beat started.

The count of feedback rows at the last trigger is kept in `<data dir>/flywheel_trigger.json`,
updated atomically; `claim_new_feedback` returns the number of new items and records the new
count only when it reaches the threshold.
"""
from __future__ import annotations

import json
import os
import tempfile

from app.flywheel.settings import FlywheelSettings

STATE_FILE = "flywheel_trigger.json"


def feedback_count(settings: FlywheelSettings) -> int:
    from sqlalchemy import func, select

    from app.store.models import Feedback
    from app.store.session import open_store

    store = open_store(settings.database_url)
    try:
        with store.transaction() as session:
            return int(session.scalar(select(func.count()).select_from(Feedback)) or 0)
    finally:
        store.close()


def claim_new_feedback(settings: FlywheelSettings) -> int | None:
    """New feedback items since the last claim if >= settings.min_new_feedback, else None."""
    path = settings.data_dir / STATE_FILE
    last = json.loads(path.read_text())["feedback_count"] if path.is_file() else 0
    now = feedback_count(settings)
    if now - last < settings.min_new_feedback:
        return None
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".trigger.", dir=settings.data_dir)
    with os.fdopen(fd, "w") as handle:
        json.dump({"feedback_count": now}, handle)
    os.replace(tmp, path)
    return now - last
