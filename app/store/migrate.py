"""Run the Alembic migrations programmatically (no alembic.ini): on server start and in tests."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def upgrade_to_head(engine: Engine) -> None:
    # "heads": independent migrations branching from one revision (each feature owns its tables)
    # all apply, in dependency order, without a merge revision per pair.
    command.upgrade(alembic_config(engine), "heads")
