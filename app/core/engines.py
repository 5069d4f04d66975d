"""One migrated SQLAlchemy engine per (database URL, schema) for the whole process.

The model registry and the flywheel's run records are opened often (every step, every request
that lists runs); opening a store runs the migrations, so it happens once per database here and
every later open reuses the engine and its connection pool. A forked child (a Celery prefork
worker process) starts with none: the parent's pooled connections must not be shared.
"""
from __future__ import annotations

import os
import threading

from sqlalchemy import Engine

_engines: dict[tuple[str, str | None], Engine] = {}
_lock = threading.Lock()


def shared_engine(url: str, schema: str | None = None) -> Engine:
    with _lock:
        if (url, schema) not in _engines:
            from app.store.session import open_store

            _engines[(url, schema)] = open_store(url, schema=schema).engine
        return _engines[(url, schema)]


def _forget_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have held it at the fork
    for engine in _engines.values():
        engine.dispose(close=False)  # drop the parent's pool without closing its connections
    _engines.clear()


os.register_at_fork(after_in_child=_forget_in_child)
