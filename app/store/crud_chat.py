"""Conversations, messages and feedback: reads for the API and the one write per chat exchange.

An exchange (the user's message(s) and every answer to them) is written in one transaction by
`record_exchange`, so a conversation never holds a question without its answer or half an n>1 set.

The writes the server makes after answering (`ExchangeRecord`, `FeedbackRecord`,
`ConversationDeletion`) are plain records: they wait in the durable outbox and may be applied
more than once (a crash between the store's commit and the outbox's acknowledgement replays them),
so applying one is idempotent by id — rows that already exist are skipped. Feedback changes are
defined and applied in `app.store.feedback_change` / `app.store.crud_feedback`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from app.store import crud_feedback
from app.store.base import new_id, utcnow
from app.store.feedback_change import FeedbackRecord  # noqa: F401 - an outbox record, like the rest
from app.store.models import Conversation, Feedback, Message

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class MessageRecord:
    id: str
    role: str
    content: str
    parent_id: str | None
    model_version: str | None = None
    sampling_params: dict | None = None
    engine_settings: dict | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_ms: float | None = None
    latency_ms: float | None = None


@dataclass(slots=True)
class ExchangeRecord:
    conversation_id: str
    user_id: str  # the conversation's owner
    create_conversation: bool  # True: the conversation row is written with this exchange
    title: str | None
    model: str | None
    messages: list[MessageRecord] = field(default_factory=list)  # parents before children
    created_at: datetime | None = None  # when the answer finished (None: when written)


@dataclass(slots=True)
class ConversationDeletion:
    conversation_id: str


def record_exchange(session: Session, *, exchange: ExchangeRecord) -> bool:
    """Write an exchange; the caller's transaction makes it all-or-nothing. Messages already
    stored (a replay) are skipped. False when nothing was written: every message was already
    there, or the conversation was deleted before the exchange reached the store."""
    now = exchange.created_at or utcnow()
    if exchange.create_conversation and session.get(Conversation, exchange.conversation_id) is None:
        session.add(Conversation(id=exchange.conversation_id, user_id=exchange.user_id,
                                 title=exchange.title, model=exchange.model, created_at=now,
                                 updated_at=now))
        session.flush()
    conversation = session.get(Conversation, exchange.conversation_id)
    if conversation is None:
        logger.warning("conversation %s was deleted; its exchange is not written",
                       exchange.conversation_id)
        return False
    new = [r for r in exchange.messages if session.get(Message, r.id) is None]
    if not new:
        return False
    seq = session.scalar(select(func.coalesce(func.max(Message.seq), 0))
                         .where(Message.conversation_id == exchange.conversation_id)) or 0
    for record in new:
        seq += 1
        session.add(Message(conversation_id=exchange.conversation_id, seq=seq, created_at=now,
                            **_fields(record)))
        session.flush()  # parents exist before their children reference them
    conversation.updated_at = now
    if exchange.model:
        conversation.model = exchange.model
    return True


def apply_deletion(session: Session, *, deletion: ConversationDeletion) -> bool:
    """Delete a conversation (messages and feedback cascade); False when it is already gone."""
    row = session.get(Conversation, deletion.conversation_id)
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


def create_conversation(session: Session, *, user_id: str, title: str | None) -> Conversation:
    now = utcnow()
    row = Conversation(id=new_id("conv"), user_id=user_id, title=title, created_at=now, updated_at=now)
    session.add(row)
    session.flush()
    return row


def list_conversations(session: Session, *, user_id: str, limit: int = 100,
                       search: str | None = None) -> list[Conversation]:
    """The user's conversations, newest first; with `search`, those whose title or any message
    contains it (case-insensitive, the text taken literally: `%` and `_` are not wildcards)."""
    query = select(Conversation).where(Conversation.user_id == user_id)
    if search:
        pattern = f"%{like_escape(search)}%"
        in_messages = (select(Message.id).where(Message.conversation_id == Conversation.id,
                                                Message.content.ilike(pattern, escape="\\"))
                       .exists())
        query = query.where(Conversation.title.ilike(pattern, escape="\\") | in_messages)
    return list(session.scalars(query.order_by(Conversation.updated_at.desc()).limit(limit)))


def like_escape(text: str) -> str:
    """`text` for a LIKE pattern with backslash as the escape character."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def rename_conversation(session: Session, *, conversation_id: str, user_id: str,
                        title: str) -> Conversation | None:
    """Set the title of the user's conversation; None when it is not in the store or not theirs."""
    row = get_conversation(session, conversation_id=conversation_id, user_id=user_id)
    if row is not None:
        row.title = title
        session.flush()
    return row


def get_conversation(session: Session, *, conversation_id: str, user_id: str | None,
                     with_messages: bool = False) -> Conversation | None:
    """The conversation when it exists and `user_id` owns it (None: any owner)."""
    query = select(Conversation).where(Conversation.id == conversation_id)
    if user_id is not None:
        query = query.where(Conversation.user_id == user_id)
    if with_messages:
        query = query.options(selectinload(Conversation.messages).selectinload(Message.feedback))
    return session.scalar(query)


def delete_conversation(session: Session, *, conversation: Conversation) -> None:
    session.delete(conversation)


def get_message(session: Session, *, message_id: str) -> Message | None:
    return session.get(Message, message_id)


def last_message_id(session: Session, *, conversation_id: str) -> str | None:
    """The most recently written message: where a new turn attaches when no parent is given."""
    return session.scalar(select(Message.id).where(Message.conversation_id == conversation_id)
                          .order_by(Message.seq.desc()).limit(1))


def create_feedback(session: Session, *, message_id: str, user_id: str | None, thumbs: str | None,
                    rating: int | None, tags: list[str], comment: str | None,
                    correction: str | None) -> Feedback:
    """Set every field of the user's feedback on the message (creating the record if needed)."""
    return crud_feedback.give_feedback(session, change_id=new_id("fbc"), message_id=message_id,
                                       user_id=user_id, created_at=utcnow(), thumbs=thumbs,
                                       rating=rating, tags=list(tags), comment=comment,
                                       correction=correction)


def _fields(record: MessageRecord) -> dict:
    return {name: getattr(record, name) for name in MessageRecord.__slots__}
