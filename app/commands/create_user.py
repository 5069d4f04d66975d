"""`flywheel create-user`: add a user (annotator, admin, ...) to the store, password from stdin."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer


def command(
    username: Annotated[str, typer.Argument(help="Name to sign in with.")],
    role: Annotated[str, typer.Option(help="user, annotator or admin.")] = "user",
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from the first line of stdin.")] = False,
    database_url: Annotated[Optional[str], typer.Option(help="SQLAlchemy URL of the store.")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Data directory (default ./data).")] = None,
) -> None:
    """Create USERNAME with ROLE. Without --password-stdin the password is prompted for."""
    from app.commands.bootstrap import create_user_in_store

    password = sys.stdin.readline().rstrip("\n") if password_stdin else typer.prompt(
        "Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        raise ValueError("password must be at least 8 characters")
    create_user_in_store(username, password, role, database_url=database_url, data_dir=data_dir)
    typer.echo(f"created {role} {username}")
