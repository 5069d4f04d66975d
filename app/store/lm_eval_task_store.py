"""Registered lm-eval tasks in the database: `SqlLmEvalTaskStore`.

A task is stored whole in one row (its YAML and data files, as bytes), so the gate on any machine
reads one complete version of it, even while an admin replaces it. This module knows nothing of
lm_eval or YAML: the flywheel validates, hashes and runs tasks (app/flywheel/lm_eval_tasks.py).
"""
from __future__ import annotations

import base64
import time
from dataclasses import dataclass

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.store.flywheel_state_models import LmEvalTaskRow

_MAX_TRIES = 20  # a replace retries only when a concurrent first add inserted the row


@dataclass(frozen=True, slots=True)
class StoredLmEvalTask:
    name: str
    files: dict[str, bytes]  # file name -> content: the task YAML and its data files
    sha256: str  # what the flywheel computed when it stored the files
    created_at: float  # epoch seconds
    updated_at: float


class SqlLmEvalTaskStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def get(self, name: str) -> StoredLmEvalTask | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(LmEvalTaskRow).where(LmEvalTaskRow.name == name)).first()
        return None if row is None else _task(row)

    def list(self) -> list[StoredLmEvalTask]:
        """Every task, by name."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(LmEvalTaskRow).order_by(LmEvalTaskRow.name)).all()
        return [_task(r) for r in rows]

    def add(self, name: str, files: dict[str, bytes], sha256: str, *,
            replace: bool = False) -> bool:
        """Store the task; False (nothing written) when `name` exists and not `replace`. Of
        several callers adding one new name at once without `replace`, exactly one gets True."""
        now = time.time()
        encoded = {file: base64.b64encode(data).decode("ascii") for file, data in files.items()}
        for _ in range(_MAX_TRIES):
            try:
                with self.engine.begin() as conn:
                    if replace and conn.execute(
                            update(LmEvalTaskRow).where(LmEvalTaskRow.name == name)
                            .values(files=encoded, sha256=sha256, updated_at=now)).rowcount:
                        return True
                    conn.execute(insert(LmEvalTaskRow).values(
                        name=name, files=encoded, sha256=sha256, created_at=now, updated_at=now))
                    return True
            except IntegrityError:
                if not replace:
                    return False  # the name is taken (perhaps just now by another caller)
        raise RuntimeError(f"lm-eval task {name}: {_MAX_TRIES} concurrent adds in a row")

    def remove(self, name: str) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(delete(LmEvalTaskRow).where(LmEvalTaskRow.name == name)
                                ).rowcount == 1


def _task(row) -> StoredLmEvalTask:
    files = {file: base64.b64decode(data) for file, data in row.files.items()}
    return StoredLmEvalTask(row.name, files, row.sha256, row.created_at, row.updated_at)
