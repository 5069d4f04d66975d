"""Settings for the server and the store, built once at the entry point and passed down.

Read from keyword arguments first, then `FLYWHEEL_*` environment variables, then defaults:
- data dir: `./data` or `$FLYWHEEL_DATA_DIR`
- database URL: a SQLite file `<data dir>/flywheel.db` (WAL mode) or `$FLYWHEEL_DATABASE_URL`
- API keys: none or `$FLYWHEEL_API_KEYS` (comma separated); auth is on with keys or `require_login`
- canary share: 0.1 or `$FLYWHEEL_CANARY_FRACTION` (conversations a canary version answers)
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from app.core.data_dir import DataDir

_DEFAULT_SECRETS = {"changeme", "secret", "password", "sk-xxx", ""}


class PrefixCacheIsolation(str, Enum):
    """Which requests may share prefix-cache KV (`flywheel serve --prefix-cache-isolation`)."""
    NONE = "none"  # any two requests with equal prompts and equal (or no) cache_salt
    USER = "user"  # only requests of the same authenticated user


@dataclass(slots=True)
class Settings:
    data_dir: Path | None = None  # None: FLYWHEEL_DATA_DIR or ./data; resolved (app.core.data_dir)
    database_url: str | None = None  # None: FLYWHEEL_DATABASE_URL or sqlite under data_dir
    api_keys: list[str] = field(default_factory=list)  # static keys with admin rights
    # /v1/* needs an API key or a login session even without api_keys (`flywheel serve` and
    # `flywheel up` default; --no-auth turns it off). False here: tests build open apps.
    require_login: bool = False
    max_queue_len: int = 1024  # requests waiting in the engine before HTTP 429
    max_body_bytes: int = 8 * 1024 * 1024  # larger request bodies get HTTP 413 before parsing
    session_ttl_s: int = 7 * 24 * 3600  # login token lifetime
    writer_backoff_s: float = 0.05  # first retry delay of a failed store write, doubled each time
    writer_max_backoff_s: float = 5.0  # ... up to this; failed writes are retried without end
    outbox_max_records: int = field(default_factory=lambda: int(os.environ.get(
        "FLYWHEEL_OUTBOX_MAX_RECORDS", "10000")))  # writes waiting for the store before chats get 503
    database_schema: str | None = None  # PostgreSQL schema to use (tests); None: the default
    canary_fraction: float = field(default_factory=lambda: float(
        os.environ.get("FLYWHEEL_CANARY_FRACTION", "0.1")))  # share of conversations on a canary
    registry_poll_s: float = 1.0  # how often the server looks for promotions / rollbacks
    # USER: every request's prefix cache is salted by its principal, so tenants never share KV
    prefix_cache_isolation: PrefixCacheIsolation = PrefixCacheIsolation.NONE
    auth_cache_ttl_s: float = 60.0  # a verified key / session is trusted this long without a lookup
    auth_cache_stale_s: float = 600.0  # ... and this long while the store is unreachable
    key_last_used_flush_s: float = 60.0  # keys' last-used times are written in one batch this often
    rate_limit_rpm: int | None = None  # requests per minute per API key (None: no limit)
    rate_limit_tpm: int | None = None  # prompt + requested completion tokens per minute per key
    login_max_failures: int = 5  # failed logins per username and client IP ...
    login_failure_window_s: int = 300  # ... within this many seconds before HTTP 429

    def __post_init__(self) -> None:
        data = DataDir.at(self.data_dir, self.database_url)  # the worker derives it the same way
        self.data_dir, self.database_url = data.root, data.database_url
        if not self.api_keys and os.environ.get("FLYWHEEL_API_KEYS"):
            self.api_keys = [k.strip() for k in os.environ["FLYWHEEL_API_KEYS"].split(",") if k.strip()]
        for key in self.api_keys:
            if key.strip().lower() in _DEFAULT_SECRETS or len(key) < 8:
                raise ValueError("API keys must be at least 8 characters and not a default secret")
        if not 0.0 <= self.canary_fraction <= 1.0:
            raise ValueError(f"canary_fraction must be in [0, 1], got {self.canary_fraction}")
        if self.registry_poll_s <= 0:
            raise ValueError(f"registry_poll_s must be positive, got {self.registry_poll_s}")
        if self.max_queue_len <= 0:
            raise ValueError(f"max_queue_len must be positive, got {self.max_queue_len}")
        if self.prefix_cache_isolation not in {i.value for i in PrefixCacheIsolation}:
            raise ValueError("prefix-cache-isolation must be 'none' or 'user', "
                             f"got {self.prefix_cache_isolation!r}")
        self.prefix_cache_isolation = PrefixCacheIsolation(self.prefix_cache_isolation)
        if self.max_body_bytes <= 0:
            raise ValueError(f"max_body_bytes must be positive, got {self.max_body_bytes}")
        if self.outbox_max_records <= 0:
            raise ValueError(f"outbox_max_records must be positive, got {self.outbox_max_records}")
        self._check_auth_limits()

    def _check_auth_limits(self) -> None:
        for name in ("rate_limit_rpm", "rate_limit_tpm"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name.replace('_', '-')} must be a positive integer, got {value}")
        if self.login_max_failures <= 0 or self.login_failure_window_s <= 0:
            raise ValueError("login_max_failures and login_failure_window_s must be positive")
        if not 0 < self.auth_cache_ttl_s <= self.auth_cache_stale_s:
            raise ValueError("auth cache: need 0 < auth_cache_ttl_s <= auth_cache_stale_s")
        if self.key_last_used_flush_s <= 0:
            raise ValueError(f"key_last_used_flush_s must be positive, got {self.key_last_used_flush_s}")

    @property
    def data(self) -> DataDir:
        """Where the store, the model registry and the flywheel's runs live (shared with the worker)."""
        return DataDir(self.data_dir, self.database_url)

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_keys) or self.require_login

    @property
    def is_sqlite(self) -> bool:
        return str(self.database_url).startswith("sqlite")
