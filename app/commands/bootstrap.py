"""Store set-up shared by `flywheel up`, `flywheel create-user` and `flywheel keys`: open,
migrate, add users."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.core.config import Settings
from app.store.crud_accounts import can_sign_in_anyone, create_account, create_first_admin
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
            create_account(session, username=username, password=password, role=role)
    finally:
        store.close()


def needs_admin(*, database_url: str | None = None, data_dir: Path | None = None) -> bool:
    """Whether nobody can sign in yet: the UI then offers the create-admin form."""
    store = open_store(_settings(database_url, data_dir).database_url)
    try:
        with store.transaction() as session:
            return not can_sign_in_anyone(session)
    finally:
        store.close()


def ensure_admin(password: str, *, database_url: str | None = None,
                 data_dir: Path | None = None) -> bool:
    """Make `admin` the first account, with `password`, while nobody can sign in (unattended
    installs: FLYWHEEL_ADMIN_PASSWORD); False when an account already existed."""
    store = open_store(_settings(database_url, data_dir).database_url)
    try:
        with store.transaction() as session:
            return create_first_admin(session, username="admin", password=password) is not None
    finally:
        store.close()
