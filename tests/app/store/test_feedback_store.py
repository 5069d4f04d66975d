"""One feedback record per (user, message) on SQLite and PostgreSQL: changes update it in place
(present fields replace, absent keep, null clears), replays are applied once, every change is
kept for audit, and what counts feedback (canary thumbs, report, ratings) sees the record once."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from app.store import crud_feedback, crud_flywheel, crud_report, crud_review, crud_users
from app.store.crud_chat import ExchangeRecord, MessageRecord, record_exchange
from app.store.feedback_change import FeedbackRecord, feedback_id_for
from app.store.models import Feedback, FeedbackChange

T0 = datetime(2026, 11, 29, 9, 0, tzinfo=timezone.utc)


def _answer(store) -> str:
    with store.transaction() as session:
        user_id = crud_users.create_user(session, username="alice", password="correct horse",
                                           role="user").id
        record_exchange(session, exchange=ExchangeRecord(
            conversation_id="c1", user_id=user_id, create_conversation=True, title=None, model="m",
            messages=[MessageRecord(id="q", role="user", content="2+3?", parent_id=None),
                      MessageRecord(id="a", role="assistant", content="6", parent_id="q",
                                    model_version="mv-1")]))
    return user_id


def _change(user_id: str, change_id: str, seconds: int, **values) -> FeedbackRecord:
    return FeedbackRecord(id=change_id, message_id="a", user_id=user_id,
                          thumbs=values.get("thumbs"), rating=values.get("rating"),
                          tags=values.get("tags", []), comment=values.get("comment"),
                          correction=values.get("correction"),
                          created_at=T0 + timedelta(seconds=seconds), fields=sorted(values),
                          feedback_id=feedback_id_for(user_id, "a"))


def _apply(store, change: FeedbackRecord) -> bool:
    with store.transaction() as session:
        return crud_feedback.record_feedback(session, feedback=change)


def test_thumb_then_correction_is_one_record_with_two_changes(store):
    user_id = _answer(store)
    assert _apply(store, _change(user_id, "c1", 0, thumbs="down"))
    assert _apply(store, _change(user_id, "c2", 5, thumbs="down", correction="5"))
    assert _apply(store, _change(user_id, "c3", 9, rating=1, tags=["math"]))
    assert not _apply(store, _change(user_id, "c2", 5, thumbs="down", correction="5"))  # a replay
    with store.session_factory() as session:
        records = session.scalars(select(Feedback)).all()
        assert len(records) == 1
        record = records[0]
        assert (record.id, record.thumbs, record.rating, record.tags, record.correction) == (
            feedback_id_for(user_id, "a"), "down", 1, ["math"], "5")
        trail = crud_feedback.feedback_changes(session, feedback_id=record.id)
        assert [(c.id, c.values, c.previous) for c in trail] == [
            ("c1", {"thumbs": "down"}, {}),
            ("c2", {"thumbs": "down", "correction": "5"}, {"thumbs": "down", "correction": None}),
            ("c3", {"rating": 1, "tags": ["math"]}, {"rating": None, "tags": []})]
        assert crud_flywheel.thumbs_for_versions(session, model_versions=["mv-1"]) == (0, 1)
        assert crud_flywheel.count_feedback(session) == 1
        assert len(crud_report.feedback_events(session, since=T0 - timedelta(days=1))) == 1
        assert crud_review.latest_ratings(session) == {"a": 1}


def test_absent_fields_keep_and_null_clears(store):
    user_id = _answer(store)
    _apply(store, _change(user_id, "c1", 0, thumbs="up", comment="nice", tags=["a"]))
    _apply(store, _change(user_id, "c2", 1, comment=None))  # thumbs and tags absent: kept
    _apply(store, _change(user_id, "c3", 2, thumbs="down"))
    with store.session_factory() as session:
        record = session.scalar(select(Feedback))
        assert (record.thumbs, record.comment, record.tags) == ("down", None, ["a"])
        assert session.scalar(select(func.count()).select_from(FeedbackChange)) == 3
        assert crud_flywheel.thumbs_for_versions(session, model_versions=["mv-1"]) == (0, 1)


def test_outbox_records_from_before_upserts_merge_like_the_migration(store):
    """A whole-record change left in the outbox by the previous version (fields=None): its
    non-empty fields win, its nulls mean 'not given'."""
    user_id = _answer(store)
    legacy = [FeedbackRecord(id="fb_old1", message_id="a", user_id=user_id, thumbs="down",
                             rating=None, tags=[], comment=None, correction=None, created_at=T0),
              FeedbackRecord(id="fb_old2", message_id="a", user_id=user_id, thumbs="down",
                             rating=None, tags=[], comment=None, correction="5",
                             created_at=T0 + timedelta(seconds=3))]
    assert [_apply(store, r) for r in legacy] == [True, True]
    with store.session_factory() as session:
        records = session.scalars(select(Feedback)).all()
        assert [(r.id, r.thumbs, r.correction) for r in records] == [("fb_old1", "down", "5")]
