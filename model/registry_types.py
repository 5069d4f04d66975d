"""The model registry's records and the storage seam under it.

`ModelRegistry` (model/registry.py) owns the lifecycle rules; where versions are kept is a
`RegistryStore`: one locked JSON file (model/registry_file.py, one machine) or the database
(app/store/registry_store.py, several machines), injected by the app layer. model/ never imports
app/, so the seam lives here, below both.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from enum import StrEnum
from typing import Hashable, Protocol


class VersionStatus(StrEnum):
    """Where a version is in its lifecycle. A `str` enum: the registry file and API responses
    carry the plain value ("production"), and comparing with that text still works."""
    CANDIDATE = "candidate"  # registered, not serving
    CANARY = "canary"  # serving a share of conversations
    PRODUCTION = "production"  # serving the public model name
    RETIRED = "retired"  # rejected, replaced or rolled back


# allowed status changes; retired -> production is a rollback restoring an earlier version
TRANSITIONS: dict[VersionStatus, frozenset[VersionStatus]] = {
    VersionStatus.CANDIDATE: frozenset({VersionStatus.CANARY, VersionStatus.PRODUCTION,
                                        VersionStatus.RETIRED}),
    VersionStatus.CANARY: frozenset({VersionStatus.PRODUCTION, VersionStatus.RETIRED}),
    VersionStatus.PRODUCTION: frozenset({VersionStatus.RETIRED}),
    VersionStatus.RETIRED: frozenset({VersionStatus.PRODUCTION}),
}


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(slots=True)
class ModelVersion:
    id: str
    name: str
    path: str  # Hugging Face model directory
    parent_id: str | None = None
    dataset_snapshot_id: str | None = None
    recipe: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    status: VersionStatus = VersionStatus.CANDIDATE
    created_at: str = field(default_factory=now_iso)
    history: list[dict] = field(default_factory=list)  # [{status, at, reason, seq}] in order
    # "sha256:<hex>" of the weights (model/artifacts.py): another machine loading `path` from a
    # shared model root checks it got the bytes that were registered. None: not recorded (base).
    content_hash: str | None = None

    def __post_init__(self) -> None:
        self.status = VersionStatus(self.status)  # the file holds the plain value

    def to_dict(self) -> dict:
        return asdict(self)


class TransitionError(ValueError):
    """A status change the lifecycle does not allow (e.g. promoting a retired candidate twice)."""


class RegistryConflict(TransitionError):
    """Another process changed a version this change was based on, between reading and writing
    (two promotes at once): this change was not applied; read again and decide again."""


class RegistryStore(Protocol):
    def read(self) -> dict[str, ModelVersion]:
        """Every version by id, in registration order."""

    def transaction(self) -> AbstractContextManager[dict[str, ModelVersion]]:
        """Versions to change in place; on a clean exit the changes are stored atomically (all or
        nothing), or `RegistryConflict` is raised if a concurrent change got there first."""

    def revision(self) -> Hashable | None:
        """A token that changes whenever a version is added or changes status (None: empty)."""
