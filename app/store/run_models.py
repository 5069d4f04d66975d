"""The flywheel's iteration run records as one table (app/flywheel/runs.py keeps the statuses;
app/store/run_store.py reads and merges rows).

Times are epoch seconds (floats), as the JSON records carried them and `GET /v1/flywheel/runs`
still returns them. `rev` is bumped by every merge, so a merge based on a stale read matches no
row and is redone; `heartbeat_at` is written by the running step's heartbeat alone and does not
bump `rev` (a beat never conflicts with a merge)."""
from __future__ import annotations

from sqlalchemy import JSON, Float, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.store.base import Base


class FlywheelRunRow(Base):
    __tablename__ = "flywheel_runs"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # a RunStatus value
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    steps: Mapped[dict] = mapped_column(JSON, default=dict)  # step name -> its outcome, timings
    current: Mapped[dict | None] = mapped_column(JSON)  # claimed step (app.flywheel.step_claims)
    heartbeat_at: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    wall_s: Mapped[float | None] = mapped_column(Float)  # set when the run has finished
    recoveries: Mapped[int] = mapped_column(default=0)
    recovered_attempt: Mapped[str | None] = mapped_column(String(512))  # the last one re-enqueued
    extra: Mapped[dict] = mapped_column(JSON, default=dict)  # any other field a record carries
    rev: Mapped[int] = mapped_column(default=1)

    __table_args__ = (Index("ix_flywheel_runs_created_at", "created_at"),)
