"""Which database errors are outages (503, retry later) and which are bugs (500): classified on
errors the real drivers raise, on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest
from sqlalchemy import exc

from app.store import crud_users
from app.store.base import new_id
from app.store.models import User
from app.store.outage import is_store_outage, ping
from app.store.session import Store, open_store


def test_a_reachable_store_answers_the_ping(store):
    ping(store)


def test_an_unopenable_sqlite_file_is_an_outage(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'db' / 'flywheel.db'}")
    store.close()
    (tmp_path / "db").rename(tmp_path / "elsewhere")
    with pytest.raises(exc.SQLAlchemyError) as raised:
        ping(store)
    assert is_store_outage(raised.value)


@pytest.mark.db
def test_a_refused_postgresql_connection_is_an_outage():
    from sqlalchemy.orm import sessionmaker

    from app.store.session import make_engine

    engine = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/test")  # nothing listens
    with pytest.raises(exc.SQLAlchemyError) as raised:
        ping(Store(engine, sessionmaker(engine)))
    assert is_store_outage(raised.value)


def test_a_constraint_violation_is_not_an_outage(store):
    with store.transaction() as session:
        crud_users.ensure_user(session, username="alice", role="user")
    with pytest.raises(exc.IntegrityError) as raised, store.transaction() as session:
        session.add(User(id=new_id("usr"), username="alice", role="user"))  # a duplicate name
    assert not is_store_outage(raised.value)
