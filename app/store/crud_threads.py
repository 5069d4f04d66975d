"""A message's thread: it and its ancestors (parent, parent's parent, ...) up to the root.

The Responses API continues a conversation from one stored answer (`previous_response_id`): what
the model sees is exactly that branch of the message tree, not the whole conversation (sibling
regenerations stay out). One recursive query on SQLite and PostgreSQL alike.
"""
from __future__ import annotations

from sqlalchemy import literal, select
from sqlalchemy.orm import Session

from app.store.models import Message

MAX_THREAD_DEPTH = 10_000  # a cycle cannot happen (parents are written first); this bounds a bug


def message_thread(session: Session, *, message_id: str) -> list[Message]:
    """`message_id` and its ancestors, root first; empty when the message does not exist."""
    anchor = (select(Message.id, Message.parent_id, literal(0).label("depth"))
              .where(Message.id == message_id).cte("thread", recursive=True))
    step = (select(Message.id, Message.parent_id, (anchor.c.depth + 1).label("depth"))
            .join(anchor, Message.id == anchor.c.parent_id)
            .where(anchor.c.depth < MAX_THREAD_DEPTH))
    thread = anchor.union_all(step)
    query = (select(Message).join(thread, Message.id == thread.c.id)
             .order_by(thread.c.depth.desc()))
    return list(session.scalars(query))
