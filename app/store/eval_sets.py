"""The table of operator-registered eval sets: regression suites the flywheel's promotion gate runs
on every candidate (a candidate must not drop beyond threshold on any of them).

The items live in the row as canonical JSONL text (`app.flywheel.eval_set_items`), like dataset
snapshots keep theirs: a set is read and replaced whole, never item by item, and `content_sha256`
proves which items a gate decision saw.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.store.base import Base, utcnow


class EvalSet(Base):
    __tablename__ = "eval_sets"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    item_count: Mapped[int]
    content_sha256: Mapped[str] = mapped_column(String(64))
    items_jsonl: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
