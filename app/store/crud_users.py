"""Users, API keys and login sessions. Secrets are never stored: passwords as scrypt hashes, API
keys and session tokens (both high-entropy random strings) as SHA-256 digests."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.store.base import new_id, utcnow
from app.store.models import ROLES, ApiKey, AuthSession, User

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str | None) -> bool:
    if not stored or not stored.startswith("scrypt$"):
        return False
    _, salt_hex, digest_hex = stored.split("$")
    digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt_hex), **_SCRYPT)
    return hmac.compare_digest(digest.hex(), digest_hex)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def get_user_by_username(session: Session, *, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))


def create_user(session: Session, *, username: str, password: str | None, role: str) -> User:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if get_user_by_username(session, username=username) is not None:
        raise ValueError(f"user {username!r} already exists")
    user = User(id=new_id("user"), username=username, role=role,
                password_hash=hash_password(password) if password else None)
    session.add(user)
    session.flush()
    return user


def ensure_user(session: Session, *, username: str, role: str) -> User:
    """The named user, created without a password when missing (the local and bootstrap users)."""
    user = get_user_by_username(session, username=username)
    return user if user is not None else create_user(session, username=username, password=None, role=role)


def create_api_key(session: Session, *, user_id: str, name: str | None = None,
                   key: str | None = None) -> tuple[ApiKey, str]:
    """A new key for `user_id`; returns the row and the plain key (shown to the caller once)."""
    plain = key or f"fw-{secrets.token_urlsafe(32)}"
    existing = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_token(plain)))
    if existing is not None:
        return existing, plain
    row = ApiKey(id=new_id("key"), key_hash=hash_token(plain), user_id=user_id, name=name)
    session.add(row)
    session.flush()
    return row, plain


def create_auth_session(session: Session, *, user_id: str, ttl_s: int) -> tuple[AuthSession, str]:
    token = f"fws-{secrets.token_urlsafe(32)}"
    row = AuthSession(id=new_id("sess"), token_hash=hash_token(token), user_id=user_id,
                      expires_at=utcnow() + timedelta(seconds=ttl_s))
    session.add(row)
    session.flush()
    return row, token


def user_for_token(session: Session, *, token: str) -> User | None:
    """The user an API key or unexpired session token belongs to, or None."""
    digest = hash_token(token)
    key = session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
    if key is not None:
        return session.get(User, key.user_id)
    auth = session.scalar(select(AuthSession).where(AuthSession.token_hash == digest))
    if auth is not None and _aware(auth.expires_at) > datetime.now(timezone.utc):
        return session.get(User, auth.user_id)
    return None


def _aware(moment: datetime) -> datetime:
    # SQLite returns naive datetimes even for timezone-aware columns; they were written in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
