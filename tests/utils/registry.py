"""The model registry a server or worker on a data dir uses (the database's), for tests to seed
and inspect, the same way the app opens it (app.core.registry)."""
from __future__ import annotations

from pathlib import Path

from app.core.data_dir import DataDir
from app.core.registry import open_registry
from model.registry import ModelRegistry


def data_registry(data_dir: str | Path, database_url: str | None = None) -> ModelRegistry:
    data = DataDir.at(data_dir, database_url)
    return open_registry(data.registry_dir, data.database_url)
