"""Users, API keys and login sessions. Secrets are never stored: passwords as scrypt hashes, API
keys and session tokens (both high-entropy random strings) as SHA-256 digests. Keys can expire and
be revoked; the ones passed with `--api-key` are bootstrap keys, replaced on rotation."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.store.base import new_id, utcnow
from app.store.models import ROLES, ApiKey, AuthSession, User

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
API_KEY_PREFIX = "fw-"  # keys made here; the server recognises its own tokens by these prefixes
SESSION_TOKEN_PREFIX = "fws-"


class KeyStatus(str, Enum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


class PriorityClass(str, Enum):
    """Whose requests the engine serves first (app/api/priority.py maps a class to the engine's
    priority numbers): people waiting on a chat before batch jobs."""
    INTERACTIVE = "interactive"
    BATCH = "batch"


def key_status(key: ApiKey, now: datetime | None = None) -> KeyStatus:
    if key.revoked_at is not None:
        return KeyStatus.REVOKED
    if key.expires_at is not None and _aware(key.expires_at) <= (now or utcnow()):
        return KeyStatus.EXPIRED
    return KeyStatus.ACTIVE


@dataclass(frozen=True, slots=True)
class Credential:
    """What a verified token proves: its user, and the key it was (None: a login session)."""
    user_id: str
    username: str
    role: str
    key_id: str | None
    expires_at: datetime | None  # when the key or session stops working (aware, UTC)
    priority_class: PriorityClass = PriorityClass.INTERACTIVE  # the key's (sessions: interactive)


@dataclass(slots=True)
class BootstrapKeys:
    """What `sync_bootstrap_keys` changed."""
    revoked_ids: list[str] = field(default_factory=list)  # earlier bootstrap keys, now revoked
    refused_ids: list[str] = field(default_factory=list)  # configured keys revoked before: left so


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


def is_own_token(token: str) -> bool:
    """Whether `token` has the shape of a key or session token made by this server (cheap, no
    lookup): other bearer strings can be ignored without asking the store when auth is off."""
    return token.startswith((API_KEY_PREFIX, SESSION_TOKEN_PREFIX))


def get_user_by_username(session: Session, *, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))


def username_of(session: Session, *, user_id: str) -> str:
    user = session.get(User, user_id)
    return user.username if user is not None else ""


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
                   key: str | None = None, expires_at: datetime | None = None,
                   is_bootstrap: bool = False,
                   priority_class: PriorityClass = PriorityClass.INTERACTIVE) -> tuple[ApiKey, str]:
    """A new key for `user_id`; returns the row and the plain key (shown to the caller once).
    A `key` that is already stored returns its row unchanged (revoked keys stay revoked)."""
    if expires_at is not None and _aware(expires_at) <= utcnow():
        raise ValueError(f"expiry {expires_at.isoformat()} is in the past")
    plain = key or f"{API_KEY_PREFIX}{secrets.token_urlsafe(32)}"
    existing = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_token(plain)))
    if existing is not None:
        return existing, plain
    row = ApiKey(id=new_id("key"), key_hash=hash_token(plain), user_id=user_id, name=name,
                 expires_at=expires_at, is_bootstrap=is_bootstrap,
                 priority_class=PriorityClass(priority_class).value)
    session.add(row)
    session.flush()
    return row, plain


def sync_bootstrap_keys(session: Session, *, user_id: str, keys: list[str]) -> BootstrapKeys:
    """Make `keys` (the `--api-key` values) the only live bootstrap keys: missing ones are added
    for `user_id`, every other bootstrap key is revoked (rotation). A configured key that was
    revoked earlier stays revoked: a leaked key must not come back with a restart."""
    wanted = {hash_token(key): key for key in keys}
    result = BootstrapKeys()
    for row in session.scalars(select(ApiKey).where(ApiKey.is_bootstrap.is_(True),
                                                    ApiKey.revoked_at.is_(None))):
        if row.key_hash not in wanted:
            row.revoked_at = utcnow()
            result.revoked_ids.append(row.id)
    for key in keys:
        row, _ = create_api_key(session, user_id=user_id, name="configured", key=key,
                                is_bootstrap=True)
        if row.revoked_at is not None:
            result.refused_ids.append(row.id)
    session.flush()
    return result


def list_api_keys(session: Session) -> list[tuple[ApiKey, str]]:
    """Every key with its owner's username, newest first (revoked and expired ones included)."""
    query = (select(ApiKey, User.username).join(User, ApiKey.user_id == User.id)
             .order_by(ApiKey.created_at.desc()))
    return [(key, username) for key, username in session.execute(query)]


def get_api_key(session: Session, *, key_id: str) -> ApiKey | None:
    return session.get(ApiKey, key_id)


def revoke_api_key(session: Session, *, key_id: str) -> ApiKey | None:
    """Revoke key `key_id` (idempotent: an earlier revocation time is kept); None when unknown."""
    row = session.get(ApiKey, key_id)
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
    return row


def mark_keys_used(session: Session, *, last_used: dict[str, datetime]) -> None:
    """Record when each key was last seen; one UPDATE per key, batched by the caller."""
    for key_id, moment in last_used.items():
        session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=moment))


def create_auth_session(session: Session, *, user_id: str, ttl_s: int) -> tuple[AuthSession, str]:
    token = f"{SESSION_TOKEN_PREFIX}{secrets.token_urlsafe(32)}"
    row = AuthSession(id=new_id("sess"), token_hash=hash_token(token), user_id=user_id,
                      expires_at=utcnow() + timedelta(seconds=ttl_s))
    session.add(row)
    session.flush()
    return row, token


def verify_token(session: Session, *, token: str) -> Credential | None:
    """What an API key (live: not revoked, not expired) or an unexpired session token proves."""
    digest = hash_token(token)
    now = utcnow()
    key = session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
    if key is not None:
        if key_status(key, now) is not KeyStatus.ACTIVE:
            return None
        return _credential(session.get(User, key.user_id), key.id, key.expires_at,
                           PriorityClass(key.priority_class))
    auth = session.scalar(select(AuthSession).where(AuthSession.token_hash == digest))
    if auth is not None and _aware(auth.expires_at) > now:
        return _credential(session.get(User, auth.user_id), None, auth.expires_at)
    return None


def user_for_token(session: Session, *, token: str) -> User | None:
    """The user a live API key or unexpired session token belongs to, or None."""
    credential = verify_token(session, token=token)
    return session.get(User, credential.user_id) if credential is not None else None


def _credential(user: User | None, key_id: str | None, expires_at: datetime | None,
                priority_class: PriorityClass = PriorityClass.INTERACTIVE) -> Credential | None:
    if user is None:
        return None
    return Credential(user_id=user.id, username=user.username, role=user.role, key_id=key_id,
                      expires_at=_aware(expires_at) if expires_at else None,
                      priority_class=priority_class)


def _aware(moment: datetime) -> datetime:
    # SQLite returns naive datetimes even for timezone-aware columns; they were written in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
