"""The flywheel run records a server or worker on a data dir uses (the database's), for tests to
seed and inspect, the same way the app opens them (app.flywheel.runs)."""
from __future__ import annotations

from pathlib import Path

from app.core.data_dir import DataDir
from app.flywheel.runs import RunRecords, open_runs


def data_runs(data_dir: str | Path, database_url: str | None = None) -> RunRecords:
    return open_runs(DataDir.at(data_dir, database_url))
