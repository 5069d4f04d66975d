"""The store under test, on SQLite (a temp file, WAL) and on the real PostgreSQL server in a fresh
schema that is dropped afterwards; and a bare engine on the same two, with no tables yet, for the
migration tests that upgrade step by step."""
from __future__ import annotations

import pytest

from app.store.session import make_engine, open_store
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


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.db)])
def engine(request, tmp_path):
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
        yield engine
        engine.dispose()
        return
    with fresh_postgres_schema() as schema:
        engine = make_engine(POSTGRES_URL, schema)
        yield engine
        engine.dispose()
