"""The model registry the app uses: `ModelRegistry` over the database (`SqlRegistryStore`).

Every part of the app opens it here, so the server, the flywheel worker, the API and the CLI on
any machine pointed at the same database see the same versions. One engine per database URL is
kept for the process (opening one runs the migrations); the first open also moves a data dir's
old `registry/registry.json` into the database.
"""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from app.core.engines import shared_engine
from model.registry import ModelRegistry


def open_registry(registry_dir: str | Path, database_url: str, *, schema: str | None = None,
                  engine: Engine | None = None) -> ModelRegistry:
    """The registry in the database at `database_url` (or on `engine`, already migrated, e.g. the
    API server's store). `registry_dir` is where a pre-database registry.json may still lie."""
    from app.store.registry_store import SqlRegistryStore, import_registry_file

    if engine is None:
        engine = shared_engine(database_url, schema)
    import_registry_file(engine, registry_dir)
    return ModelRegistry(registry_dir, store=SqlRegistryStore(engine))
