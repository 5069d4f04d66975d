"""Which version answers a request for the public model name: production, or the canary for a
deterministic share of conversations.

Clients always ask for one stable public name (the served model's name, e.g. "stories260K-hf").
It routes to the production version; while a canary runs, the conversations whose id hashes below
`canary_fraction` go to the canary instead, so a conversation sticks to one version for all its
turns. A request naming an exact version id (e.g. "mv-base") gets that version if it is loaded.
The registry watcher moves `production_id` / `canary_id`; routes only read them.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from app.serving.model_host import ModelHost, ModelLoadingError, ModelNotFoundError, ServedModel
from model.registry import VersionStatus


def canary_bucket(key: str) -> float:
    """A stable position in [0, 1) for a routing key (same key, same bucket, every process)."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


@dataclass(slots=True)
class Rollout:
    public_name: str
    production_id: str  # the version the public name serves
    canary_id: str | None = None  # the version a share of conversations tries, when one runs
    canary_fraction: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 <= self.canary_fraction <= 1.0:
            raise ValueError(f"canary_fraction must be in [0, 1], got {self.canary_fraction}")

    def goes_to_canary(self, key: str | None) -> bool:
        return (self.canary_id is not None and key is not None
                and canary_bucket(key) < self.canary_fraction)

    def resolve(self, host: ModelHost, requested: str | None, key: str | None) -> ServedModel:
        """The ready version for a request asking for `requested`, routed by `key` (the
        conversation id). Raises the host's ModelNotFoundError / ModelLoadingError."""
        if requested and requested != self.public_name:
            return host.get(requested)
        if self.goes_to_canary(key):
            try:
                return host.get(self.canary_id)
            except (ModelNotFoundError, ModelLoadingError):
                pass  # the canary just ended or is still loading: production answers
        if not requested and self.production_id not in host:
            return host.get(None)  # no name given: whatever this server serves
        return host.get(self.production_id)

    def status_of(self, version_id: str) -> VersionStatus | None:
        if version_id == self.production_id:
            return VersionStatus.PRODUCTION
        if version_id == self.canary_id:
            return VersionStatus.CANARY
        return None
