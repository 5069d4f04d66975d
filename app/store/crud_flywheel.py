"""Queries the flywheel runs against the store: how much feedback there is, and how each model
version's answers were rated (the canary verdict compares versions by it)."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.store.models import Feedback, Message


def count_feedback(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Feedback)) or 0)


def thumbs_for_versions(session: Session, *, model_versions: list[str]) -> tuple[int, int]:
    """(thumbs up, thumbs up + down) on answers whose `model_version` is one of `model_versions`."""
    rows = session.execute(
        select(Feedback.thumbs, func.count()).join(Message, Feedback.message_id == Message.id)
        .where(Message.model_version.in_(model_versions), Feedback.thumbs.in_(["up", "down"]))
        .group_by(Feedback.thumbs)).all()
    counts = dict(rows)
    return counts.get("up", 0), counts.get("up", 0) + counts.get("down", 0)
