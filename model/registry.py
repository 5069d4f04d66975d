"""Model versions with lineage and a lifecycle, kept by a `RegistryStore`.

Every version records its parent, the dataset snapshot and recipe that made it, its evaluation
metrics, a content hash of its weights and a status: candidate -> canary -> production -> retired.
Each change runs in one store transaction: the JSON file store (model/registry_file.py, the
default) serializes them under a file lock; the database store (app/store/registry_store.py,
several machines) applies them only if nothing they read changed meanwhile, so of two promotes at
once exactly one wins and the other raises `RegistryConflict`. It knows nothing about serving:
callers act on the status.
"""
from __future__ import annotations

import functools
from collections.abc import Hashable
from pathlib import Path

from model.registry_file import REGISTRY_FILE, JsonFileRegistryStore
from model.registry_types import (TRANSITIONS, ModelVersion, RegistryConflict, RegistryStore,
                                  TransitionError, VersionStatus, now_iso)

__all__ = ["BASE_VERSION_ID", "REGISTRY_FILE", "TRANSITIONS", "ModelRegistry", "ModelVersion",
           "RegistryConflict", "RegistryStore", "TransitionError", "VersionStatus"]

# The id of the model a registry starts from (the served or base model, before any fine-tune).
BASE_VERSION_ID = "mv-base"
_now = now_iso
_ATTEMPTS = 5


def _retry_on_conflict(method):
    """For changes that decide nothing from what they read (add a version unless it is there,
    merge metrics): a concurrent change they lost to is simply read again. Status transitions
    (promote, canary, reject, rollback) are not retried: their caller decided on a state that is
    gone, so it gets the RegistryConflict."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        for attempt in range(_ATTEMPTS):
            try:
                return method(*args, **kwargs)
            except RegistryConflict:
                if attempt == _ATTEMPTS - 1:
                    raise
    return wrapper


class ModelRegistry:
    def __init__(self, root: str | Path, store: RegistryStore | None = None):
        """`root`: the registry directory (its registry.json is the store unless `store`)."""
        self.root = Path(root)
        self.path = self.root / REGISTRY_FILE
        self.store = store if store is not None else JsonFileRegistryStore(self.root)

    def revision(self) -> Hashable | None:
        """Changes whenever a version is added or changes status: pollers compare it."""
        return self.store.revision()

    # ---- reads -------------------------------------------------------------------------------
    def list(self) -> list[ModelVersion]:
        return list(self._read().values())

    def get(self, version_id: str) -> ModelVersion:
        versions = self._read()
        if version_id not in versions:
            raise KeyError(f"no model version {version_id!r}")
        return versions[version_id]

    def find(self, version_id: str) -> ModelVersion | None:
        return self._read().get(version_id)

    def with_status(self, status: VersionStatus) -> list[ModelVersion]:
        return [v for v in self.list() if v.status == status]

    def production(self) -> ModelVersion | None:
        live = self.with_status(VersionStatus.PRODUCTION)
        return live[-1] if live else None

    def canary(self) -> ModelVersion | None:
        live = self.with_status(VersionStatus.CANARY)
        return live[-1] if live else None

    # ---- writes ------------------------------------------------------------------------------
    @_retry_on_conflict
    def register(self, name: str, path: str | Path, *, parent_id: str | None = None,
                 dataset_snapshot_id: str | None = None, recipe: dict | None = None,
                 metrics: dict | None = None, status: VersionStatus = VersionStatus.CANDIDATE,
                 version_id: str | None = None, content_hash: str | None = None) -> ModelVersion:
        """Add a version (a candidate unless told otherwise). Re-registering `version_id` returns
        the existing version unchanged, so a retried task does not duplicate it."""
        try:
            status = VersionStatus(status)
        except ValueError as e:
            raise ValueError(f"status must be one of {[s.value for s in VersionStatus]}, "
                             f"got {status!r}") from e
        with self._transaction() as versions:
            if version_id is not None and version_id in versions:
                return versions[version_id]
            if parent_id is not None and parent_id not in versions:
                raise ValueError(f"parent model version {parent_id!r} is not registered")
            if status == VersionStatus.PRODUCTION:
                self._retire_all(versions, VersionStatus.PRODUCTION,
                                 "replaced by a new production version")
            new_id = version_id or f"mv-{len(versions) + 1:04d}"
            version = ModelVersion(id=new_id, name=name, path=str(path), parent_id=parent_id,
                                   dataset_snapshot_id=dataset_snapshot_id, recipe=recipe or {},
                                   metrics=metrics or {}, status=status,
                                   content_hash=content_hash)
            version.history.append({"status": status, "at": version.created_at,
                                    "reason": "registered", "seq": self._next_seq(versions)})
            versions[new_id] = version
            return version

    @_retry_on_conflict
    def ensure_production(self, path: str | Path, *, name: str = "base",
                          version_id: str = BASE_VERSION_ID) -> ModelVersion:
        """The production version; a registry without one gets `path` (the base model) registered
        as production under `version_id`. Called by the server at startup and by the flywheel
        before its first iteration: in one transaction, so the two never register it twice."""
        with self._transaction() as versions:
            live = self._live(versions)
            if live is not None:
                return live
            if version_id in versions:
                return self._move(versions, version_id, VersionStatus.PRODUCTION,
                                  "restored: the registry had no production version")
            version = ModelVersion(id=version_id, name=name, path=str(path),
                                   recipe={"source": "base model"},
                                   status=VersionStatus.PRODUCTION)
            version.history.append({"status": version.status, "at": version.created_at,
                                    "reason": "registered as the base model",
                                    "seq": self._next_seq(versions)})
            versions[version_id] = version
            return version

    @_retry_on_conflict
    def update_metrics(self, version_id: str, metrics: dict) -> ModelVersion:
        with self._transaction() as versions:
            version = self._require(versions, version_id)
            version.metrics.update(metrics)
            return version

    def start_canary(self, version_id: str, reason: str = "canary") -> ModelVersion:
        with self._transaction() as versions:
            self._retire_all(versions, VersionStatus.CANARY, "replaced by a newer canary",
                             keep=version_id)
            return self._move(versions, version_id, VersionStatus.CANARY, reason)

    def promote(self, version_id: str, reason: str = "promoted") -> ModelVersion:
        """Make `version_id` production; the previous production version is retired."""
        with self._transaction() as versions:
            version = self._require(versions, version_id)
            if version.status == VersionStatus.PRODUCTION:
                return version
            if version.status == VersionStatus.RETIRED:
                raise TransitionError(f"{version_id} is retired; use rollback to restore it")
            self._retire_all(versions, VersionStatus.PRODUCTION, f"replaced by {version_id}")
            return self._move(versions, version_id, VersionStatus.PRODUCTION, reason)

    def reject(self, version_id: str, reason: str) -> ModelVersion:
        """A candidate or canary that failed the gate or the canary: retired, with the reason."""
        with self._transaction() as versions:
            return self._move(versions, version_id, VersionStatus.RETIRED, reason)

    def rollback(self, version_id: str, reason: str = "rolled back") -> ModelVersion:
        """Undo `version_id`: a canary is retired; a production version is retired and the
        version that was production before it is restored. Returns the version now serving."""
        with self._transaction() as versions:
            version = self._require(versions, version_id)
            if version.status == VersionStatus.CANARY:
                self._retire_rolled_back(versions, version_id, reason)
                return self._live(versions)
            if version.status != VersionStatus.PRODUCTION:
                raise TransitionError(f"{version_id} is {version.status}; only a canary or the "
                                      f"production version can be rolled back")
            previous = self._previous_production(versions, version_id)
            if previous is None:
                raise TransitionError(f"{version_id} has no earlier production version to restore")
            self._retire_rolled_back(versions, version_id, reason)
            return self._move(versions, previous.id, VersionStatus.PRODUCTION,
                              f"restored by rollback of {version_id}")

    # ---- internals ---------------------------------------------------------------------------
    def _retire_rolled_back(self, versions, version_id: str, reason: str) -> None:
        retired = self._move(versions, version_id, VersionStatus.RETIRED, reason)
        retired.history[-1]["rolled_back"] = True

    def _live(self, versions: dict[str, ModelVersion]) -> ModelVersion | None:
        live = [v for v in versions.values() if v.status == VersionStatus.PRODUCTION]
        return live[-1] if live else None

    def _previous_production(self, versions, version_id) -> ModelVersion | None:
        """The version that was production most recently before `version_id` became it, skipping
        versions that were themselves rolled back (a rollback never resurrects a bad version)."""
        became = max(h["seq"] for h in versions[version_id].history
                     if h["status"] == VersionStatus.PRODUCTION)
        best, best_seq = None, -1
        for v in versions.values():
            seqs = [h["seq"] for h in v.history
                    if h["status"] == VersionStatus.PRODUCTION and h["seq"] < became]
            rolled_back = any(h.get("rolled_back") for h in v.history)
            if v.id != version_id and not rolled_back and seqs and max(seqs) > best_seq:
                best, best_seq = v, max(seqs)
        return best

    @staticmethod
    def _next_seq(versions) -> int:
        return 1 + max((h.get("seq", 0) for v in versions.values() for h in v.history), default=0)

    def _retire_all(self, versions, status: VersionStatus, reason: str,
                    keep: str | None = None) -> None:
        for v in versions.values():
            if v.status == status and v.id != keep:
                self._move(versions, v.id, VersionStatus.RETIRED, reason)

    @staticmethod
    def _require(versions, version_id) -> ModelVersion:
        if version_id not in versions:
            raise KeyError(f"no model version {version_id!r}")
        return versions[version_id]

    def _move(self, versions, version_id: str, status: VersionStatus,
              reason: str) -> ModelVersion:
        version = self._require(versions, version_id)
        if status == version.status:
            return version
        if status not in TRANSITIONS[version.status]:
            raise TransitionError(f"{version_id}: cannot go from {version.status} to {status}")
        version.status = status
        version.history.append({"status": status, "at": _now(), "reason": reason,
                                "seq": self._next_seq(versions)})
        return version

    def _read(self) -> dict[str, ModelVersion]:
        return self.store.read()

    def _transaction(self):
        return self.store.transaction()
