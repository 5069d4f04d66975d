"""Tables owned by the review console: annotator labels and versioned dataset snapshots.

One label per (message, annotator): labelling again replaces the earlier verdict, so agreement
statistics see each annotator's current opinion. Snapshots keep their JSONL text in the database so
a snapshot id alone reproduces the exact training data (the content hash proves it).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.store.base import Base, utcnow

VERDICTS = ("accept", "reject", "rewrite")


class ReviewLabel(Base):
    __tablename__ = "review_labels"
    __table_args__ = (
        UniqueConstraint("message_id", "annotator_id", name="uq_review_labels_message_annotator"),
        CheckConstraint("verdict IN ('accept', 'reject', 'rewrite')", name="verdict_known"),
    )
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    message_id: Mapped[str] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    annotator_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    verdict: Mapped[str] = mapped_column(String(16))
    rewrite: Mapped[str | None] = mapped_column(Text)
    preferred_message_id: Mapped[str | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class DatasetSnapshot(Base):
    __tablename__ = "dataset_snapshots"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(unique=True)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    counts: Mapped[dict] = mapped_column(JSON)
    sft_jsonl: Mapped[str] = mapped_column(Text, default="")
    dpo_jsonl: Mapped[str] = mapped_column(Text, default="")
    kto_jsonl: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
