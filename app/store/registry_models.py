"""The model registry's tables (model/registry.py keeps the rules; app/store/registry_store.py
maps them here). A version row carries `rev`, bumped by every change, so a write based on a stale
read matches no row; partial unique indexes keep at most one production and one canary version
whatever two processes do at once."""
from __future__ import annotations

from sqlalchemy import JSON, ForeignKey, Index, String, Text, false, text
from sqlalchemy.orm import Mapped, mapped_column

from app.store.base import Base


class ModelVersionRow(Base):
    __tablename__ = "model_versions"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    path: Mapped[str] = mapped_column(Text)
    parent_id: Mapped[str | None] = mapped_column(String(128))
    dataset_snapshot_id: Mapped[str | None] = mapped_column(String(128))
    recipe: Mapped[dict] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[str] = mapped_column(String(40))  # ISO text, as the registry writes it
    content_hash: Mapped[str | None] = mapped_column(String(80))
    rev: Mapped[int] = mapped_column(default=1)

    __table_args__ = tuple(
        Index(f"uq_model_versions_one_{status}", "status", unique=True,
              sqlite_where=text(f"status = '{status}'"),
              postgresql_where=text(f"status = '{status}'"))
        for status in ("production", "canary"))


class ModelVersionEvent(Base):
    """One status change; `seq` orders them across versions (rollback finds the production before)."""
    __tablename__ = "model_version_events"
    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    version_id: Mapped[str] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"),
                                            index=True)
    status: Mapped[str] = mapped_column(String(16))
    at: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(Text, default="")
    rolled_back: Mapped[bool] = mapped_column(default=False, server_default=false())
