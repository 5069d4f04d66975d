"""Store behaviour on SQLite and PostgreSQL: migrations, users and secrets, exchanges written
all-or-nothing, the message tree, feedback."""
from __future__ import annotations

import pytest
from sqlalchemy import func, inspect, select

from app.store import crud_chat, crud_users
from app.store.crud_chat import ExchangeRecord, MessageRecord
from app.store.models import ApiKey, Conversation, Message, User


def _count(store, model) -> int:
    with store.session_factory() as session:
        return session.scalar(select(func.count()).select_from(model))


def _exchange(user_id: str, conversation_id: str = "conv_1", create: bool = True) -> ExchangeRecord:
    return ExchangeRecord(conversation_id=conversation_id, user_id=user_id, create_conversation=create,
                          title="hi", model="m1", messages=[
                              MessageRecord(id=f"{conversation_id}_u", role="user", content="hi",
                                            parent_id=None),
                              MessageRecord(id=f"{conversation_id}_a", role="assistant", content="yo",
                                            parent_id=f"{conversation_id}_u", model_version="m1",
                                            sampling_params={"temperature": 0.0},
                                            engine_settings={"block_size": 16}, prompt_tokens=3,
                                            completion_tokens=2, ttft_ms=1.5, latency_ms=9.0)])


def _user(store, name="alice", role="user") -> str:
    with store.transaction() as session:
        return crud_users.create_user(session, username=name, password="correct horse", role=role).id


def test_migrations_create_every_table(store):
    names = set(inspect(store.engine).get_table_names())
    assert {"users", "api_keys", "auth_sessions", "conversations", "messages", "feedback",
            "alembic_version"} <= names


def test_passwords_and_keys_are_stored_hashed(store):
    user_id = _user(store)
    with store.transaction() as session:
        _row, key = crud_users.create_api_key(session, user_id=user_id, name="ci")
        _auth, token = crud_users.create_auth_session(session, user_id=user_id, ttl_s=60)
    with store.session_factory() as session:
        user = session.get(User, user_id)
        assert "correct horse" not in user.password_hash
        assert crud_users.verify_password("correct horse", user.password_hash)
        assert not crud_users.verify_password("wrong", user.password_hash)
        assert all(key not in row.key_hash for row in session.scalars(select(ApiKey)))
        assert crud_users.user_for_token(session, token=key).id == user_id
        assert crud_users.user_for_token(session, token=token).id == user_id
        assert crud_users.user_for_token(session, token=key + "x") is None


def test_expired_session_token_is_refused(store):
    user_id = _user(store)
    with store.transaction() as session:
        _auth, token = crud_users.create_auth_session(session, user_id=user_id, ttl_s=-1)
    with store.session_factory() as session:
        assert crud_users.user_for_token(session, token=token) is None


def test_duplicate_user_and_bad_role_are_refused(store):
    _user(store)
    with pytest.raises(ValueError, match="already exists"), store.transaction() as session:
        crud_users.create_user(session, username="alice", password="x" * 8, role="user")
    with pytest.raises(ValueError, match="role"), store.transaction() as session:
        crud_users.create_user(session, username="bob", password="x" * 8, role="god")


def test_exchange_is_written_with_its_tree(store):
    user_id = _user(store)
    with store.transaction() as session:
        crud_chat.record_exchange(session, exchange=_exchange(user_id))
    with store.session_factory() as session:
        conversation = crud_chat.get_conversation(session, conversation_id="conv_1", user_id=user_id,
                                                  with_messages=True)
        assert [m.role for m in conversation.messages] == ["user", "assistant"]
        answer = conversation.messages[1]
        assert answer.parent_id == conversation.messages[0].id
        assert answer.sampling_params == {"temperature": 0.0}
        assert answer.engine_settings == {"block_size": 16}
        assert (answer.prompt_tokens, answer.completion_tokens, answer.ttft_ms) == (3, 2, 1.5)
        assert crud_chat.get_conversation(session, conversation_id="conv_1", user_id="other") is None


def test_failing_exchange_leaves_nothing(store):
    user_id = _user(store)
    broken = _exchange(user_id)
    broken.messages[1].parent_id = "msg_does_not_exist"  # foreign key violation on the 2nd row
    with pytest.raises(Exception), store.transaction() as session:
        crud_chat.record_exchange(session, exchange=broken)
    assert _count(store, Conversation) == 0
    assert _count(store, Message) == 0


def test_regenerations_are_siblings_and_feedback_attaches(store):
    user_id = _user(store)
    with store.transaction() as session:
        crud_chat.record_exchange(session, exchange=_exchange(user_id))
        sibling = ExchangeRecord(conversation_id="conv_1", user_id=user_id, create_conversation=False,
                                 title=None, model="m2", messages=[MessageRecord(
                                     id="regen", role="assistant", content="other",
                                     parent_id="conv_1_u", model_version="m2")])
        crud_chat.record_exchange(session, exchange=sibling)
        crud_chat.create_feedback(session, message_id="regen", user_id=user_id, thumbs="up",
                                  rating=5, tags=["funny"], comment=None, correction=None)
    with store.session_factory() as session:
        children = session.scalars(select(Message).where(Message.parent_id == "conv_1_u")).all()
        assert sorted(m.id for m in children) == ["conv_1_a", "regen"]
        assert crud_chat.last_message_id(session, conversation_id="conv_1") == "regen"
        assert [f.tags for f in crud_chat.get_message(session, message_id="regen").feedback] == [["funny"]]


def test_deleting_a_conversation_removes_its_messages(store):
    user_id = _user(store)
    with store.transaction() as session:
        crud_chat.record_exchange(session, exchange=_exchange(user_id))
    with store.transaction() as session:
        conversation = crud_chat.get_conversation(session, conversation_id="conv_1", user_id=user_id)
        crud_chat.delete_conversation(session, conversation=conversation)
    assert _count(store, Message) == 0


def test_sqlite_runs_in_wal_mode(tmp_path):
    from sqlalchemy import text

    from app.store.session import open_store

    store = open_store(f"sqlite:///{tmp_path / 'sub' / 'flywheel.db'}")
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    store.close()


def test_default_database_is_a_sqlite_file_under_the_data_dir(tmp_path, monkeypatch):
    from app.core.config import Settings

    monkeypatch.delenv("FLYWHEEL_DATABASE_URL", raising=False)
    monkeypatch.setenv("FLYWHEEL_DATA_DIR", str(tmp_path))
    settings = Settings()
    assert settings.data_dir == tmp_path
    assert settings.database_url == f"sqlite:///{(tmp_path / 'flywheel.db').resolve()}"
