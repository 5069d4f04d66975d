"""Store set-up shared by `flywheel up`, `flywheel create-user` and `flywheel keys`: open,
migrate, add users."""
from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.core.config import Settings
from app.store.crud_users import create_user, get_user_by_username
from app.store.session import Store, open_store


def _settings(database_url: str | None, data_dir: Path | None) -> Settings:
    kwargs = {"database_url": database_url}
    if data_dir is not None:
        kwargs["data_dir"] = data_dir
    return Settings(**kwargs)


@contextmanager
def opened_store(database_url: str | None = None, data_dir: Path | None = None) -> Iterator[Store]:
    """The store the server with these options uses, migrated, closed on exit."""
    store = open_store(_settings(database_url, data_dir).database_url)
    try:
        yield store
    finally:
        store.close()


def create_user_in_store(username: str, password: str, role: str, *, database_url: str | None = None,
                         data_dir: Path | None = None) -> None:
    store = open_store(_settings(database_url, data_dir).database_url)
    try:
        with store.transaction() as session:
            create_user(session, username=username, password=password, role=role)
    finally:
        store.close()


def ensure_admin(password: str | None, *, database_url: str | None = None,
                 data_dir: Path | None = None) -> str | None:
    """Create user `admin` on a store that has none; returns the password when it made one up."""
    store = open_store(_settings(database_url, data_dir).database_url)
    try:
        with store.transaction() as session:
            if get_user_by_username(session, username="admin") is not None:
                return None
            chosen = password or secrets.token_urlsafe(12)
            create_user(session, username="admin", password=chosen, role="admin")
            return chosen
    finally:
        store.close()
