"""The background writer: retries with backoff, logs what it cannot write, keeps order, flushes."""
from __future__ import annotations

import logging

from app.store import crud_chat, crud_users
from app.store.crud_chat import ExchangeRecord, MessageRecord
from app.store.writer import StoreWriter


def test_failed_writes_are_retried_until_they_succeed(store):
    attempts = []

    def flaky(session):
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("database is locked")
        crud_users.create_user(session, username="late", password=None, role="user")

    writer = StoreWriter(store, max_retries=5, backoff_s=0.001)
    writer.submit("flaky", flaky)
    assert writer.flush(timeout_s=10)
    writer.close()
    assert len(attempts) == 3 and writer.stats.num_retries == 2 and writer.stats.num_written == 1
    with store.session_factory() as session:
        assert crud_users.get_user_by_username(session, username="late") is not None


def test_a_write_that_keeps_failing_is_logged_not_silently_dropped(store, caplog):
    def broken(session):
        crud_users.create_user(session, username="half", password=None, role="user")
        raise RuntimeError("disk full")

    writer = StoreWriter(store, max_retries=2, backoff_s=0.001)
    with caplog.at_level(logging.ERROR, logger="app.store.writer"):
        writer.submit("exchange msg_42", broken)
        writer.flush(timeout_s=10)
    writer.close()
    assert writer.stats.num_failed == 1
    assert any("exchange msg_42" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    with store.session_factory() as session:  # the transaction was rolled back each time
        assert crud_users.get_user_by_username(session, username="half") is None


def test_writes_keep_their_order_and_close_drains_the_queue(store):
    with store.transaction() as session:
        user_id = crud_users.create_user(session, username="u", password=None, role="user").id
    writer = StoreWriter(store)
    for i in range(20):
        exchange = ExchangeRecord(conversation_id="c", user_id=user_id, create_conversation=i == 0,
                                  title=None, model=None,
                                  messages=[MessageRecord(id=f"m{i}", role="user", content=str(i),
                                                          parent_id=f"m{i - 1}" if i else None)])
        writer.submit(f"m{i}", lambda s, e=exchange: crud_chat.record_exchange(s, exchange=e))
    writer.close()
    with store.session_factory() as session:
        conversation = crud_chat.get_conversation(session, conversation_id="c", user_id=user_id,
                                                  with_messages=True)
        assert [m.content for m in conversation.messages] == [str(i) for i in range(20)]
