"""The store under test, on SQLite (a temp file, WAL) and on the real PostgreSQL server in a fresh
schema that is dropped afterwards."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, text

from app.store.session import open_store

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.db)])
def store(request, tmp_path):
    if request.param == "sqlite":
        store = open_store(f"sqlite:///{tmp_path / 'flywheel.db'}")
        yield store
        store.close()
        return
    with fresh_postgres_schema() as schema:
        store = open_store(POSTGRES_URL, schema=schema)
        yield store
        store.close()


class fresh_postgres_schema:
    """Context manager: CREATE SCHEMA with a unique name, DROP ... CASCADE on exit."""

    def __enter__(self) -> str:
        self.name = f"test_{uuid.uuid4().hex[:12]}"
        self._admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with self._admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{self.name}"'))
        return self.name

    def __exit__(self, *exc) -> None:
        with self._admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{self.name}" CASCADE'))
        self._admin.dispose()
