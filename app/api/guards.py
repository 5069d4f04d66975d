"""The server's per-process auth state: the credential cache, per-key rate limits and the login
throttle, built once from the settings at startup (one object on `AppState`)."""
from __future__ import annotations

from dataclasses import dataclass

from app.api.credentials import Verifier
from app.api.rate_limit import KeyRateLimits, LoginThrottle
from app.core.config import Settings


@dataclass(slots=True)
class AuthGuards:
    verifier: Verifier  # token -> credential, cached; keys' last-used times
    key_limits: KeyRateLimits  # requests / tokens per minute per key (no-ops when unset)
    login: LoginThrottle  # failed logins per username and client address

    @classmethod
    def from_settings(cls, settings: Settings) -> AuthGuards:
        return cls(Verifier(settings),
                   KeyRateLimits(settings.rate_limit_rpm, settings.rate_limit_tpm),
                   LoginThrottle(settings.login_max_failures, settings.login_failure_window_s))
