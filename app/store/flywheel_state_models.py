"""The flywheel's small shared state, which lived as files under the data dir before: the beat
trigger (one row) and the registered lm-eval tasks (one row per task, its files inside).

In the database every machine pointed at it (server, workers, the CLI) sees the same state, so a
multi-machine deployment needs no shared data directory for it (app/store/trigger_store.py and
app/store/lm_eval_task_store.py read and write the rows)."""
from __future__ import annotations

from sqlalchemy import JSON, Float, String
from sqlalchemy.orm import Mapped, mapped_column

from app.store.base import Base


class FlywheelTriggerRow(Base):
    __tablename__ = "flywheel_trigger"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # one row: TRIGGER_ID
    feedback_count: Mapped[int] = mapped_column()  # feedback items the store held at the trigger
    run_id: Mapped[str | None] = mapped_column(String(128))  # the run that trigger queued
    triggered_at: Mapped[float] = mapped_column(Float)  # epoch seconds
    rev: Mapped[int] = mapped_column()  # bumped by every trigger: a stale compare-and-set misses


class LmEvalTaskRow(Base):
    __tablename__ = "lm_eval_tasks"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    # file name -> base64 of its bytes: task.yaml and its data files, in one row so a reader sees
    # one whole version of a task even while it is being replaced
    files: Mapped[dict] = mapped_column(JSON)
    sha256: Mapped[str] = mapped_column(String(64))  # of the files, as the flywheel hashes them
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
