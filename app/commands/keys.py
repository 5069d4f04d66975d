"""`flywheel keys list|create|revoke`: API keys in the store, with last use and optional expiry.

`--priority batch` makes a key's requests wait behind interactive ones (app/api/priority.py).

A key is printed once, at creation (only its SHA-256 is stored). Revocation is immediate in the
store; a running server that verified the key in the last minute keeps accepting it until its
credential cache entry ages out (`auth_cache_ttl_s`, 60 s). Last-used times are written by the
server in batches, so they trail by up to about a minute.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer

group = typer.Typer(no_args_is_help=True, help="List, create and revoke API keys.")

DatabaseUrl = Annotated[Optional[str], typer.Option(help="SQLAlchemy URL of the store.")]
DataDir = Annotated[Optional[Path], typer.Option(help="Data directory (default ./data).")]

_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


def parse_expiry(expires_in: str | None, expires_at: str | None,
                 now: datetime | None = None) -> datetime | None:
    """`--expires-in 30d` (s, m, h, d, w) or `--expires-at 2027-01-31[T12:00[+02:00]]` (UTC when no
    offset is given) -> an aware UTC datetime in the future; None when neither is given."""
    now = now or datetime.now(timezone.utc)
    if expires_in is not None and expires_at is not None:
        raise ValueError("pass --expires-in or --expires-at, not both")
    if expires_in is not None:
        match = _DURATION.match(expires_in)
        if match is None or int(match.group(1)) == 0:
            raise ValueError(f"--expires-in must be a positive duration like 30d, 12h or 90m, "
                             f"got {expires_in!r}")
        return now + timedelta(seconds=int(match.group(1)) * _UNITS_S[match.group(2)])
    if expires_at is None:
        return None
    try:
        moment = datetime.fromisoformat(expires_at.strip())
    except ValueError as e:
        raise ValueError(f"--expires-at must be a date like 2027-01-31, got {expires_at!r}") from e
    moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    if moment <= now:
        raise ValueError(f"--expires-at {expires_at} is in the past")
    return moment.astimezone(timezone.utc)


def parse_priority_class(value: str):
    from app.store.crud_users import PriorityClass

    try:
        return PriorityClass(value.strip().lower())
    except ValueError as e:
        raise ValueError(f"--priority must be one of "
                         f"{', '.join(c.value for c in PriorityClass)}, got {value!r}") from e


@group.command("create")
def create_key(
    user: Annotated[str, typer.Option(help="Username that owns the key (must exist).")] = "admin",
    name: Annotated[Optional[str], typer.Option(help="A label to recognise the key by.")] = None,
    expires_in: Annotated[Optional[str], typer.Option(help="Lifetime, e.g. 30d, 12h, 90m.")] = None,
    expires_at: Annotated[Optional[str], typer.Option(help="Expiry date (ISO 8601, UTC).")] = None,
    priority: Annotated[str, typer.Option(
        help="Priority class: interactive (served first) or batch (waits behind interactive "
             "requests; its requests cannot ask for more).")] = "interactive",
    database_url: DatabaseUrl = None, data_dir: DataDir = None,
) -> None:
    """Create a key for USER; prints the key (once) on stdout."""
    from app.commands.bootstrap import opened_store
    from app.store import crud_users

    priority_class = parse_priority_class(priority)
    expiry = parse_expiry(expires_in, expires_at)
    if name is not None and len(name) > 128:
        raise ValueError("--name must be at most 128 characters")
    with opened_store(database_url, data_dir) as store, store.transaction() as session:
        owner = crud_users.get_user_by_username(session, username=user)
        if owner is None:
            raise ValueError(f"no user named {user!r} (add one with `flywheel create-user`)")
        row, key = crud_users.create_api_key(session, user_id=owner.id, name=name,
                                             expires_at=expiry, priority_class=priority_class)
    until = f", expires {expiry.isoformat(timespec='seconds')}" if expiry else ""
    typer.echo(f"created {row.id} for {user} ({priority_class.value} priority){until}; the key "
               f"is shown only now:", err=True)
    typer.echo(key)


@group.command("list")
def list_keys(database_url: DatabaseUrl = None, data_dir: DataDir = None) -> None:
    """Every key: id, owner, name, status, bootstrap flag, created, last used, expires, priority
    class."""
    from app.commands.bootstrap import opened_store
    from app.store import crud_users

    with opened_store(database_url, data_dir) as store, store.session_factory() as session:
        rows = [(key, username, crud_users.key_status(key)) for key, username
                in crud_users.list_api_keys(session)]
    header = ("ID", "USER", "NAME", "STATUS", "BOOTSTRAP", "CREATED", "LAST USED", "EXPIRES",
              "PRIORITY")
    lines = [header] + [(key.id, username, key.name or "-", status.value,
                         "yes" if key.is_bootstrap else "no", _when(key.created_at),
                         _when(key.last_used_at), _when(key.expires_at), key.priority_class)
                        for key, username, status in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())


@group.command("revoke")
def revoke_key(
    key_id: Annotated[str, typer.Argument(help="The key's id, as `flywheel keys list` shows it.")],
    database_url: DatabaseUrl = None, data_dir: DataDir = None,
) -> None:
    """Revoke KEY_ID: it stops working (within a minute on a running server)."""
    from app.commands.bootstrap import opened_store
    from app.store import crud_users

    with opened_store(database_url, data_dir) as store, store.transaction() as session:
        row = crud_users.get_api_key(session, key_id=key_id)
        if row is None:
            raise ValueError(f"no API key with id {key_id!r} (see `flywheel keys list`)")
        already = row.revoked_at is not None
        crud_users.revoke_api_key(session, key_id=key_id)
    typer.echo(f"{key_id} was already revoked" if already else f"revoked {key_id}")


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    aware = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return aware.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M")
