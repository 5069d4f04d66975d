"""Seed a real store (SQLite) with conversations and feedback for the flywheel tests."""
from __future__ import annotations

from app.store.base import new_id
from app.store.models import Conversation, Feedback, Message, User
from app.store.session import open_store


def open_sqlite_store(tmp_path):
    return open_store(f"sqlite:///{tmp_path / 'store.db'}")


def add_user(session, name: str = "alice", role: str = "user") -> str:
    user = User(id=new_id("usr"), username=name, role=role)
    session.add(user)
    session.flush()
    return user.id


def add_exchange(session, user_id: str, question: str, answers: list[str],
                 model_version: str = "demo") -> list[str]:
    """One conversation: a user question and one or more sibling answers. Returns answer ids."""
    conv = Conversation(id=new_id("conv"), user_id=user_id, title=question[:20])
    session.add(conv)
    session.flush()
    q = Message(id=new_id("msg"), conversation_id=conv.id, role="user", content=question, seq=1)
    session.add(q)
    session.flush()
    ids = []
    for i, text in enumerate(answers):
        a = Message(id=new_id("msg"), conversation_id=conv.id, parent_id=q.id, role="assistant",
                    content=text, seq=2 + i, model_version=model_version)
        session.add(a)
        ids.append(a.id)
    session.flush()
    return ids


def add_feedback(session, message_id: str, user_id: str, **fields) -> None:
    session.add(Feedback(id=new_id("fb"), message_id=message_id, user_id=user_id, **fields))
    session.flush()
