"""Migration 0004_key_priority on SQLite and PostgreSQL: keys stored before it become
interactive (what every key was), and a batch key round-trips through the store."""
from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import command

from app.store import crud_users
from app.store.migrate import alembic_config, upgrade_to_head

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


def test_earlier_keys_become_interactive_and_a_batch_key_keeps_its_class(engine):
    command.upgrade(alembic_config(engine), "0003_api_keys")
    meta = sa.MetaData()
    meta.reflect(engine, only=["users", "api_keys"])
    with engine.begin() as conn:
        conn.execute(meta.tables["users"].insert(),
                     {"id": "u1", "username": "ops", "role": "admin", "created_at": T0})
        conn.execute(meta.tables["api_keys"].insert(),
                     {"id": "key_old", "key_hash": crud_users.hash_token("fw-old"),
                      "user_id": "u1", "name": "old", "created_at": T0, "is_bootstrap": False})
    upgrade_to_head(engine)
    with sa.orm.Session(engine) as session:
        old = crud_users.verify_token(session, token="fw-old")
        assert old.priority_class is crud_users.PriorityClass.INTERACTIVE
        _row, key = crud_users.create_api_key(session, user_id="u1", name="nightly",
                                              priority_class=crud_users.PriorityClass.BATCH)
        session.commit()
        assert crud_users.verify_token(session, token=key).priority_class is \
            crud_users.PriorityClass.BATCH


def test_migrated_api_keys_match_the_model(engine):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from app.store.base import Base

    upgrade_to_head(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in diff if "api_keys" in repr(d)] == []
