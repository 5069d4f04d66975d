"""Migration 0004_feedback_one on SQLite and PostgreSQL: duplicate feedback rows written by the
old one-row-per-call API merge into one record per (user, message) (latest non-empty value of
each field wins), every old row is kept as an audit change, and a second record is refused."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.migration import MigrationContext
from alembic.autogenerate import compare_metadata

from app.store.base import Base
from app.store.models import Feedback, FeedbackChange
from app.store.migrate import alembic_config, upgrade_to_head

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


def _seed_old_rows(engine) -> None:
    """What the API wrote before: alice's thumb, then her 'Send feedback' with a correction,
    then a rating; bob's one thumb; a deleted user's two rows (user_id NULL)."""
    meta = sa.MetaData()
    meta.reflect(engine, only=["users", "conversations", "messages", "feedback"])
    users, convs, msgs, fb = (meta.tables[n] for n in ("users", "conversations", "messages", "feedback"))
    with engine.begin() as conn:
        conn.execute(users.insert(), [{"id": u, "username": u, "role": "user", "created_at": T0}
                                      for u in ("alice", "bob")])
        conn.execute(convs.insert(), {"id": "c1", "user_id": "alice", "created_at": T0, "updated_at": T0})
        conn.execute(msgs.insert(), [
            {"id": "q", "conversation_id": "c1", "seq": 1, "role": "user", "content": "2+3?", "created_at": T0},
            {"id": "a", "conversation_id": "c1", "parent_id": "q", "seq": 2, "role": "assistant",
             "content": "6", "created_at": T0}])
        row = {"message_id": "a", "thumbs": None, "rating": None, "tags": [], "comment": None,
               "correction": None}
        conn.execute(fb.insert(), [
            {**row, "id": "fb_1", "user_id": "alice", "thumbs": "down", "tags": ["wrong"], "created_at": T0},
            {**row, "id": "fb_2", "user_id": "alice", "thumbs": "down", "correction": "5",
             "created_at": T0 + timedelta(seconds=5)},
            {**row, "id": "fb_3", "user_id": "alice", "rating": 1, "comment": "off by one",
             "created_at": T0 + timedelta(seconds=9)},
            {**row, "id": "fb_4", "user_id": "bob", "thumbs": "up", "created_at": T0 + timedelta(seconds=1)},
            {**row, "id": "fb_5", "user_id": None, "thumbs": "up", "created_at": T0},
            {**row, "id": "fb_6", "user_id": None, "thumbs": "down", "created_at": T0}])


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def test_duplicates_merge_into_one_record_with_their_history(engine):
    command.upgrade(alembic_config(engine), "0003_api_keys")
    _seed_old_rows(engine)
    upgrade_to_head(engine)
    meta = sa.MetaData()
    meta.reflect(engine, only=["feedback", "feedback_changes"])
    fb, fbc = meta.tables["feedback"], meta.tables["feedback_changes"]
    with engine.connect() as conn:
        records = {r.id: r for r in conn.execute(sa.select(fb))}
        changes = conn.execute(sa.select(fbc).order_by(fbc.c.changed_at, fbc.c.id)).all()
    assert sorted(records) == ["fb_1", "fb_4", "fb_5", "fb_6"]
    alice = records["fb_1"]
    assert (alice.user_id, alice.thumbs, alice.rating, alice.comment, alice.correction) == (
        "alice", "down", 1, "off by one", "5")
    assert _tags(alice.tags) == ["wrong"]
    assert _aware(alice.created_at) == T0 and _aware(alice.updated_at) == T0 + timedelta(seconds=9)
    assert records["fb_4"].thumbs == "up" and _aware(records["fb_4"].updated_at) == T0 + timedelta(seconds=1)
    assert {records["fb_5"].thumbs, records["fb_6"].thumbs} == {"up", "down"}  # not whose: kept apart
    trail = [(c.id, c.feedback_id) for c in changes if c.feedback_id == "fb_1"]
    assert trail == [("fb_1", "fb_1"), ("fb_2", "fb_1"), ("fb_3", "fb_1")]
    second = next(c for c in changes if c.id == "fb_2")
    assert _json(second.values) == {"thumbs": "down", "correction": "5"}
    assert _json(second.previous) == {"thumbs": "down", "correction": None}
    assert len(changes) == 6
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(fb.insert(), {"id": "fb_x", "message_id": "a", "user_id": "alice", "tags": [],
                                   "created_at": T0, "updated_at": T0})


def test_migrated_schema_matches_the_models(engine):
    upgrade_to_head(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    ours = [d for d in diff if any(t in repr(d) for t in (Feedback.__tablename__,
                                                          FeedbackChange.__tablename__))]
    assert ours == []


def _json(value):
    import json
    return json.loads(value) if isinstance(value, str) else value


def _tags(value):
    return _json(value)
