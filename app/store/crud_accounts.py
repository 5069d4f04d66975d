"""Accounts people sign in with: created under a checked name, and the first-run admin.

`crud_users.create_user` stores any name it is given (the server's own users, `local` and
`admin`, go through it); every account a person names (the API, `flywheel create-user`, the
first-run form) is created here, after `app.core.names` has normalized the name (NFKC) and
compared it with the names already taken.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.names import UnusableName, confusable_with, normalize_username
from app.store.crud_users import create_user, get_user_by_username, hash_password
from app.store.models import User


class UserExists(ValueError):
    """A user of that (normalized) name is already stored."""


def create_account(session: Session, *, username: str, password: str, role: str) -> User:
    """A new user named by the NFKC form of `username`. UnusableName when the name holds invisible,
    control or space characters or reads like a taken name; UserExists when it is taken."""
    username = normalize_username(username)
    if get_user_by_username(session, username=username) is not None:
        raise UserExists(f"user {username!r} already exists")
    if lookalike := confusable_with(username, list(session.scalars(select(User.username)))):
        raise UnusableName(f"username {username!r} is too easily confused with the existing "
                           f"user {lookalike!r}")
    return create_user(session, username=username, password=password, role=role)


def can_sign_in_anyone(session: Session) -> bool:
    """Whether any account has a password (`local` and the bootstrap `admin` have none)."""
    with_password = select(User.id).where(User.password_hash.is_not(None)).limit(1)
    return session.scalar(with_password) is not None


def create_first_admin(session: Session, *, username: str, password: str) -> User | None:
    """The first-run admin account, or None when someone can already sign in (setup is over)."""
    if can_sign_in_anyone(session):
        return None
    existing = get_user_by_username(session, username=normalize_username(username))
    if existing is not None:  # the server's own `admin` (owner of --api-key keys) or `local`
        existing.password_hash, existing.role = hash_password(password), "admin"
        session.flush()
        return existing
    return create_account(session, username=username, password=password, role="admin")
