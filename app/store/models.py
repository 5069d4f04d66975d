"""Tables owned by the serving side: users, API keys, login sessions, conversations, messages,
feedback. Messages form a tree per conversation (`parent_id`); regenerations are siblings.

Feedback is one record per (user, message), updated in place; every change that made it is kept
in `feedback_changes` for audit (who set which field to what, and what it replaced)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.store.base import Base, utcnow

ROLES = ("user", "annotator", "admin")


class User(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(128), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16), default="user")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """Only a SHA-256 of the key is stored; the key itself is shown once at creation. A key works
    while `revoked_at` is unset and `expires_at` (if any) is in the future. Bootstrap keys are the
    ones passed with `flywheel serve --api-key`; a start with other keys revokes them."""
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]  # written in batches, at most about once a minute
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    is_bootstrap: Mapped[bool] = mapped_column(default=False, server_default=false())
    # crud_users.PriorityClass: the engine priority its requests get unless they ask for less
    priority_class: Mapped[str] = mapped_column(String(16), default="interactive",
                                                server_default="interactive")


class AuthSession(Base):
    __tablename__ = "auth_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Conversation(Base):
    __tablename__ = "conversations"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    title: Mapped[str | None] = mapped_column(String(256))
    model: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    messages: Mapped[list["Message"]] = relationship(
        back_populates="conversation", cascade="all, delete-orphan", passive_deletes=True,
        order_by="Message.seq")


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_conversation_seq", "conversation_id", "seq"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"), index=True)
    seq: Mapped[int] = mapped_column(default=0)  # order of writing inside the conversation
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text, default="")
    model_version: Mapped[str | None] = mapped_column(String(256), index=True)
    sampling_params: Mapped[dict | None] = mapped_column(JSON)
    engine_settings: Mapped[dict | None] = mapped_column(JSON)
    finish_reason: Mapped[str | None] = mapped_column(String(32))
    prompt_tokens: Mapped[int | None]
    completion_tokens: Mapped[int | None]
    ttft_ms: Mapped[float | None]
    latency_ms: Mapped[float | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    conversation: Mapped[Conversation] = relationship(back_populates="messages")
    feedback: Mapped[list["Feedback"]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="Feedback.created_at")


class Feedback(Base):
    """A person's current judgement of one answer: the sum of their changes, latest value of each
    field. Counts, rates, the review queue, datasets and canary verdicts read only this row."""
    __tablename__ = "feedback"
    __table_args__ = (CheckConstraint("rating IS NULL OR (rating >= 1 AND rating <= 5)", name="rating_range"),
                      UniqueConstraint("user_id", "message_id", name="uq_feedback_user_message"))
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    message_id: Mapped[str] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    thumbs: Mapped[str | None] = mapped_column(String(8))
    rating: Mapped[int | None]
    tags: Mapped[list] = mapped_column(JSON, default=list)
    comment: Mapped[str | None] = mapped_column(Text)
    correction: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)  # the first change
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)  # the latest change


class FeedbackChange(Base):
    """One change to a feedback record, as the person sent it: the fields it set (`values`) and
    what they held before (`previous`). The id is the change's own (minted by the API), so a
    change replayed from the outbox is recognised and applied once."""
    __tablename__ = "feedback_changes"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    feedback_id: Mapped[str] = mapped_column(ForeignKey("feedback.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    values: Mapped[dict] = mapped_column(JSON, default=dict)
    previous: Mapped[dict] = mapped_column(JSON, default=dict)
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
