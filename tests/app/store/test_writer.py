"""The store writer drains the durable outbox: in order, idempotently, through a locked or
unreachable store without losing anything, and past an entry the store refuses for good."""
from __future__ import annotations

import sqlite3
import time

import pytest
from sqlalchemy import func, select

from app.store import crud_chat, crud_users
from app.store.crud_chat import ConversationDeletion, FeedbackRecord
from app.store.models import Feedback, Message
from app.store.outbox import Outbox
from app.store.session import open_store
from app.store.writer import StoreWriter, apply_record
from tests.app.store.test_outbox import exchange
from tests.utils.postgres import POSTGRES_URL, fresh_postgres_schema
from tests.utils.tcp_proxy import TcpProxy


def _user(store) -> str:
    with store.transaction() as session:
        return crud_users.ensure_user(session, username="u", role="user").id


def _exchange(user_id: str, i: int, conversation: str = "c"):
    record = exchange(i, conversation)
    record.user_id = user_id
    return record


def _count(store, model) -> int:
    with store.session_factory() as session:
        return session.scalar(select(func.count()).select_from(model))


def _feedback(message_id: str, fid: str, rating: int | None = 4) -> FeedbackRecord:
    return FeedbackRecord(id=fid, message_id=message_id, user_id=None, thumbs="up", rating=rating,
                          tags=[], comment=None, correction=None,
                          created_at=exchange(0).created_at)


def test_writes_keep_their_order_and_leave_the_outbox_empty(store, tmp_path):
    user_id = _user(store)
    outbox = Outbox(tmp_path / "o.db", max_records=100)
    writer = StoreWriter(store, outbox, backoff_s=0.01)
    for i in range(20):
        outbox.append(_exchange(user_id, i))
    assert writer.flush(timeout_s=30)
    writer.close()
    assert outbox.depth == 0
    outbox.close()
    with store.session_factory() as session:
        conversation = crud_chat.get_conversation(session, conversation_id="c", user_id=user_id,
                                                  with_messages=True)
        assert [m.id for m in conversation.messages] == [
            m for i in range(20) for m in (f"q{i}", f"a{i}")]
    assert Outbox(tmp_path / "o.db", max_records=100).num_replayed == 0


def test_a_replay_of_what_is_already_stored_changes_nothing(store, tmp_path):
    user_id = _user(store)
    records = [_exchange(user_id, 0), _exchange(user_id, 1), _feedback("a1", "fb_1")]
    with store.transaction() as session:  # the store committed, then the process died before
        for record in records:            # the outbox heard about it
            assert apply_record(session, record)
    outbox = Outbox(tmp_path / "o.db", max_records=100)
    for record in [*records, _exchange(user_id, 2)]:
        outbox.append(record)
    writer = StoreWriter(store, outbox, backoff_s=0.01)
    assert writer.flush(timeout_s=30)
    writer.close()
    outbox.close()
    assert _count(store, Message) == 6 and _count(store, Feedback) == 1
    with store.transaction() as session:
        assert not apply_record(session, _exchange(user_id, 2))
        assert apply_record(session, ConversationDeletion("c"))
        assert not apply_record(session, ConversationDeletion("c"))
        assert not apply_record(session, _exchange(user_id, 3))  # its conversation is gone
    assert _count(store, Message) == 0 and _count(store, Feedback) == 0


def test_an_entry_the_store_refuses_for_good_is_set_aside_not_blocking(store, tmp_path):
    user_id = _user(store)
    outbox = Outbox(tmp_path / "o.db", max_records=100)
    outbox.append(_exchange(user_id, 0))
    outbox.append(_feedback("a0", "fb_bad", rating=9))  # violates the rating check constraint
    outbox.append(_exchange(user_id, 1))
    writer = StoreWriter(store, outbox, backoff_s=0.001, max_backoff_s=0.01)
    assert writer.flush(timeout_s=30)
    writer.close()
    assert writer.stats.num_failed == 1 and _count(store, Message) == 4
    outbox.close()
    reopened = Outbox(tmp_path / "o.db", max_records=100)
    assert reopened.num_replayed == 0 and reopened.num_parked() == 1  # kept on disk, aside
    reopened.close()


def test_a_locked_sqlite_store_loses_nothing_once_it_is_released(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'flywheel.db'}")
    user_id = _user(store)
    outbox = Outbox(tmp_path / "o.db", max_records=100)
    writer = StoreWriter(store, outbox, backoff_s=0.01, max_backoff_s=0.2)
    blocker = sqlite3.connect(tmp_path / "flywheel.db", timeout=1)
    blocker.execute("BEGIN EXCLUSIVE")  # another connection holds the write lock
    try:
        for i in range(10):
            outbox.append(_exchange(user_id, i))
        assert not writer.flush(timeout_s=1.0) and outbox.depth == 10
    finally:
        blocker.rollback()
        blocker.close()
    assert writer.flush(timeout_s=60)
    writer.close()
    outbox.close()
    assert _count(store, Message) == 20
    store.close()


@pytest.mark.db
def test_an_unreachable_postgresql_loses_nothing_once_it_is_back(tmp_path):
    host, port = "127.0.0.1", 5432
    proxy = TcpProxy(host, port)
    url = POSTGRES_URL.replace(f"{host}:{port}", f"{host}:{proxy.port}")
    with fresh_postgres_schema() as schema:
        store = open_store(url, schema=schema)
        user_id = _user(store)
        outbox = Outbox(tmp_path / "o.db", max_records=100)
        writer = StoreWriter(store, outbox, backoff_s=0.01, max_backoff_s=0.2)
        proxy.cut()
        for i in range(10):
            outbox.append(_exchange(user_id, i))
        time.sleep(1.5)
        assert outbox.depth == 10 and writer.stats.num_retries >= 3  # kept trying, not given up
        proxy.restore()
        assert writer.flush(timeout_s=60)
        writer.close()
        outbox.close()
        assert _count(store, Message) == 20
        store.close()
    proxy.close()
