"""Database engine and sessions: SQLite in WAL mode by default, PostgreSQL by URL.

`open_store(url, schema=...)` builds the SQLAlchemy engine, runs the Alembic migrations to head and
returns a `Store` holding the engine and its session factory. With `schema` (PostgreSQL only) every
connection uses that schema via `search_path` (tests create a fresh one per run).
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Store:
    engine: Engine
    session_factory: sessionmaker[Session]

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One session and one transaction: committed on success, rolled back on error."""
        with self.session_factory.begin() as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()


def make_engine(url: str, schema: str | None = None) -> Engine:
    if url.startswith("sqlite"):
        _ensure_sqlite_dir(url)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    if schema:
        event.listen(engine, "connect", lambda conn, _: _set_search_path(conn, schema))
    return engine


def open_store(url: str, schema: str | None = None, migrate: bool = True) -> Store:
    """Engine + session factory for `url`, migrated to the latest schema when `migrate`."""
    engine = make_engine(url, schema)
    if migrate:
        from app.store.migrate import upgrade_to_head
        upgrade_to_head(engine)
    return Store(engine=engine, session_factory=sessionmaker(engine, expire_on_commit=False))


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # WAL lets readers run while the background writer commits; foreign keys are off by default.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _set_search_path(dbapi_conn, schema: str) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute(f'SET search_path TO "{schema}"')
    cursor.close()
    dbapi_conn.commit()


def _ensure_sqlite_dir(url: str) -> None:
    path = url.split(":///", 1)[-1]
    if path and path != ":memory:" and not path.startswith("file:"):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
