"""Verifying bearer tokens without putting the store on every request's path.

A verified key or session is trusted for `auth_cache_ttl_s` (keyed by the token's SHA-256, the
digest the store keeps too), and while the store is unreachable for up to `auth_cache_stale_s`,
so a short outage does not stop chat. Revoking a key through this server drops its entry at once;
a revocation made elsewhere (`flywheel keys revoke` in another process) takes effect here within
the TTL. Keys' last-used times are collected in memory and written in one batch per interval,
never by the request that used the key.

This module knows nothing about HTTP: callers map a missing credential to 401.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from app.core.config import Settings
from app.store import crud_users
from app.store.base import utcnow
from app.store.crud_users import Credential
from app.store.outage import is_store_outage
from app.store.session import Store

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Entry:
    credential: Credential
    verified_at: float  # monotonic seconds


class CredentialCache:
    """token digest -> the credential last verified for it, and when."""

    def __init__(self, ttl_s: float, stale_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s, self.stale_s, self._clock = ttl_s, stale_s, clock
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def get(self, digest: str, *, max_age_s: float) -> Credential | None:
        """The credential verified within `max_age_s`, unless the key or session has expired."""
        with self._lock:
            entry = self._entries.get(digest)
        if entry is None or self._clock() - entry.verified_at > max_age_s:
            return None
        expires_at = entry.credential.expires_at
        return entry.credential if expires_at is None or expires_at > utcnow() else None

    def put(self, digest: str, credential: Credential) -> None:
        now = self._clock()
        with self._lock:
            if len(self._entries) >= 10_000:  # drop what could never be used again
                self._entries = {d: e for d, e in self._entries.items()
                                 if now - e.verified_at <= self.stale_s}
            self._entries[digest] = _Entry(credential, now)

    def discard(self, digest: str) -> None:
        with self._lock:
            self._entries.pop(digest, None)


class LastUsedRecorder:
    """When each API key was last seen, written to the store in one batch per `flush`."""

    def __init__(self) -> None:
        self._pending: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def touch(self, key_id: str) -> None:
        with self._lock:
            self._pending[key_id] = utcnow()

    def flush(self, store: Store) -> int:
        """Write what was seen since the last flush; on a store error keep it for the next one."""
        with self._lock:
            batch, self._pending = self._pending, {}
        if not batch:
            return 0
        try:
            with store.transaction() as session:
                crud_users.mark_keys_used(session, last_used=batch)
        except SQLAlchemyError as e:
            logger.warning("could not record API keys' last use (kept for the next try): %s", e)
            with self._lock:
                self._pending = {**batch, **self._pending}
            return 0
        return len(batch)

    async def run(self, store: Store, interval_s: float) -> None:
        """Flush every `interval_s` until cancelled (then once more, so nothing seen is lost)."""
        try:
            while True:
                await asyncio.sleep(interval_s)
                await asyncio.to_thread(self.flush, store)
        finally:
            await asyncio.shield(asyncio.to_thread(self.flush, store))


class Verifier:
    """Token -> Credential through the cache; the store is asked only on a miss."""

    def __init__(self, settings: Settings) -> None:
        self.cache = CredentialCache(settings.auth_cache_ttl_s, settings.auth_cache_stale_s)
        self.last_used = LastUsedRecorder()

    async def verify(self, token: str, store: Store) -> Credential | None:
        """The live credential `token` proves, or None. Raises the store's error when the store
        cannot answer and nothing recent enough is cached."""
        digest = crud_users.hash_token(token)
        credential = self.cache.get(digest, max_age_s=self.cache.ttl_s)
        if credential is None:
            credential = await self._lookup(token, digest, store)
        if credential is not None and credential.key_id is not None:
            self.last_used.touch(credential.key_id)
        return credential

    async def _lookup(self, token: str, digest: str, store: Store) -> Credential | None:
        try:
            credential = await asyncio.to_thread(_read_credential, store, token)
        except SQLAlchemyError as e:
            stale = self.cache.get(digest, max_age_s=self.cache.stale_s)
            if stale is None or not is_store_outage(e):
                raise
            logger.warning("store unreachable; using a credential verified earlier: %s", e)
            return stale
        if credential is None:
            self.cache.discard(digest)  # revoked or expired since it was cached
        else:
            self.cache.put(digest, credential)
        return credential


def _read_credential(store: Store, token: str) -> Credential | None:
    with store.session_factory() as session:
        return crud_users.verify_token(session, token=token)
