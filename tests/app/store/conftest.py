"""The store under test, on SQLite (a temp file, WAL) and on the real PostgreSQL server in a fresh
schema that is dropped afterwards."""
from __future__ import annotations

import pytest

from app.store.session import open_store
from tests.utils.postgres import POSTGRES_URL, fresh_postgres_schema


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
