"""Feedback in the store: one record per (user, message), updated in place by each change, with
every change kept in `feedback_changes` for audit (see `app.store.feedback_change`).

Why an audit table rather than a JSON list on the record: the change's id is the table's key, so
an outbox replay is recognised with one primary-key lookup; the record every reader loads (queue,
report, datasets) stays small however often it is edited; and applying a change is an insert,
never a read-modify-write of a growing blob.
"""
from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.store.feedback_change import FeedbackRecord, feedback_id_for
from app.store.models import Feedback, FeedbackChange, Message

logger = logging.getLogger(__name__)


def record_feedback(session: Session, *, feedback: FeedbackRecord) -> bool:
    """Apply one change; False when it was applied before (a replay) or its message is gone."""
    if session.get(FeedbackChange, feedback.id) is not None:
        return False
    if session.get(Message, feedback.message_id) is None:
        logger.warning("message %s was deleted; feedback change %s is not written",
                       feedback.message_id, feedback.id)
        return False
    row = current_feedback(session, user_id=feedback.user_id, message_id=feedback.message_id)
    values = feedback.values()
    if row is None:
        row = Feedback(id=feedback.feedback_id or feedback.id, message_id=feedback.message_id,
                       user_id=feedback.user_id, tags=[], created_at=feedback.created_at,
                       updated_at=feedback.created_at)
        session.add(row)
        previous = {}
    else:
        previous = {name: getattr(row, name) for name in values}
    for name, value in values.items():
        setattr(row, name, list(value or []) if name == "tags" else value)
    row.updated_at = feedback.created_at
    session.flush()
    session.add(FeedbackChange(id=feedback.id, feedback_id=row.id, user_id=feedback.user_id,
                               values=values, previous=previous, changed_at=feedback.created_at))
    session.flush()
    return True


def give_feedback(session: Session, *, change_id: str, message_id: str, user_id: str | None,
                  created_at, **values) -> Feedback:
    """Apply a change made here and now (tests, scripts): `values` are the fields it sets."""
    record = FeedbackRecord(id=change_id, message_id=message_id, user_id=user_id,
                            thumbs=values.get("thumbs"), rating=values.get("rating"),
                            tags=list(values.get("tags") or []), comment=values.get("comment"),
                            correction=values.get("correction"), created_at=created_at,
                            fields=sorted(values), feedback_id=feedback_id_for(user_id, message_id))
    record_feedback(session, feedback=record)
    return current_feedback(session, user_id=user_id, message_id=message_id)


def current_feedback(session: Session, *, user_id: str | None, message_id: str) -> Feedback | None:
    if user_id is None:  # records of deleted users are no one's to update
        return None
    return session.scalar(select(Feedback).where(Feedback.user_id == user_id,
                                                 Feedback.message_id == message_id))


def feedback_changes(session: Session, *, feedback_id: str) -> list[FeedbackChange]:
    """The audit trail of one record, oldest first."""
    query = (select(FeedbackChange).where(FeedbackChange.feedback_id == feedback_id)
             .order_by(FeedbackChange.changed_at, FeedbackChange.id))
    return list(session.scalars(query))
