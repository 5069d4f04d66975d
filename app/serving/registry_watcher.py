"""Serve what the model registry says: hot-swap to a new production version, start or end a
canary, and swap back on rollback.

The registry (in the database, `app.core.registry`; or a JSON file) is written by the API (promote /
rollback) and by flywheel workers on any machine, so the server polls its `revision()` (the last
status change) every `poll_s` and reconciles when it changes. New weights load in a worker thread while
the current version keeps answering; `ModelHost.swap` then sends new requests to the new engine
and lets requests already running on the old one finish there before it shuts down.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

from app.serving.model_host import ModelHost, ModelLoadingError, ModelNotFoundError, ServedModel
from app.serving.rollout import Rollout
from model.artifacts import verify_content_hash
from model.registry import ModelRegistry, ModelVersion

logger = logging.getLogger(__name__)

# (model dir, version id, the production model whose engine settings to copy) -> ready model
VersionLoader = Callable[[str, str, ServedModel | None], ServedModel]


def version_to_serve(registry: ModelRegistry | str | Path, model_dir: str | Path,
                     public_name: str) -> ModelVersion | None:
    """The version a starting server loads for its public name: the registry's production version.
    A registry without one gets `model_dir` registered as the base (`mv-base`, named
    `public_name`), so every answer carries the id of the weights that wrote it, from the first
    request on. None when the registry is unreadable or production's weights are gone: the
    server then serves `model_dir` under the public name and the watcher logs why."""
    registry = _as_registry(registry)
    try:
        version = registry.ensure_production(Path(model_dir).resolve(), name=public_name)
    except (OSError, ValueError) as e:
        logger.error("cannot read the model registry at %s (%s); serving %s", registry.root, e,
                     model_dir)
        return None
    if not (Path(version.path) / "config.json").is_file():
        logger.error("production version %s has no model at %s; serving %s", version.id,
                     version.path, model_dir)
        return None
    try:  # the model root may be shared: these must be the bytes that were registered
        verify_content_hash(version.path, version.content_hash)
    except ValueError as e:
        logger.error("production version %s: %s; serving %s", version.id, e, model_dir)
        return None
    return version


class RegistryWatcher:
    def __init__(self, registry: ModelRegistry | str | Path, rollout: Rollout, host: ModelHost,
                 load_version: VersionLoader, poll_s: float = 1.0) -> None:
        self.registry = _as_registry(registry)
        self.registry_dir = self.registry.root
        self.rollout = rollout
        self.host = host
        self.load_version = load_version
        self.poll_s = poll_s
        self._seen = None  # the registry revision last reconciled
        self._hashes: dict[str, str | None] = {}  # version id -> recorded weights hash

    async def run(self) -> None:
        """Poll until cancelled (the app's lifespan owns the task)."""
        while True:
            await self.check()
            await asyncio.sleep(self.poll_s)

    async def check(self) -> bool:
        """Reconcile if the registry changed since the last look; True if it did."""
        identity = await asyncio.to_thread(self._identity)
        if identity is None or identity == self._seen:
            return False
        try:
            await self.reconcile()
        except ModelLoadingError:
            return False  # the server's first model is still loading: look again next poll
        except (FileNotFoundError, ValueError) as e:  # a version whose directory is unusable
            logger.error("cannot serve a registry version (%s); still serving %s", e,
                         self.rollout.production_id)
        except Exception:  # noqa: BLE001 - a bad version must not stop serving the current one
            logger.exception("could not serve the registry's versions; still serving %s",
                             self.rollout.production_id)
        self._seen = identity
        return True

    def _identity(self):
        try:
            return self.registry.revision()
        except Exception as e:  # noqa: BLE001 - a database away for a moment: look again later
            logger.warning("cannot read the model registry's revision (%s)", e)
            return None

    async def reconcile(self) -> None:
        registry = self.registry
        production, canary = await asyncio.to_thread(
            lambda: (registry.production(), registry.canary()))
        self._hashes = {v.id: v.content_hash for v in (production, canary) if v is not None}
        if production is not None:
            await self._serve_production(production.id, production.path)
        await self._serve_canary(None if canary is None else (canary.id, canary.path))

    async def _serve_production(self, version_id: str, path: str) -> None:
        rollout = self.rollout
        if rollout.production_id == version_id and version_id in self.host:
            return
        current = self._current_production()
        if rollout.canary_id == version_id:  # the canary is promoted: its engine keeps serving
            new = self.host.get(version_id)
            await self.host.swap(rollout.production_id, new)
        elif current is not None and _same_dir(current.model_dir, path):
            new = dataclasses.replace(current, id=version_id)  # same weights, now registered
            await self.host.swap(rollout.production_id, new)
        else:
            logger.info("loading production version %s from %s", version_id, path)
            new = await self.host.load_and_swap(
                rollout.production_id, lambda: self._load(path, version_id, current))
        rollout.production_id = new.id
        if rollout.canary_id == new.id:
            rollout.canary_id = None
        logger.info("serving %s as %s", new.id, rollout.public_name)

    async def _serve_canary(self, wanted: tuple[str, str] | None) -> None:
        rollout = self.rollout
        if wanted is not None and wanted[0] == rollout.canary_id:
            return
        previous = rollout.canary_id
        if wanted is not None:
            version_id, path = wanted
            logger.info("loading canary version %s from %s", version_id, path)
            new = await asyncio.to_thread(self._load, path, version_id,
                                          self._current_production())
            self.host.add(new)
            rollout.canary_id = version_id
        else:
            rollout.canary_id = None
        if previous is not None and previous != rollout.production_id:
            self.host.retire(previous)  # its running requests finish first

    def _load(self, path: str, version_id: str, current: ServedModel | None) -> ServedModel:
        """Load a version after checking its weights are the registered ones (ArtifactMismatch,
        a ValueError, keeps the current version serving)."""
        verify_content_hash(path, self._hashes.get(version_id))
        return self.load_version(path, version_id, current)

    def _current_production(self) -> ServedModel | None:
        """The production model (ModelLoadingError while it is still loading)."""
        try:
            return self.host.get(self.rollout.production_id)
        except ModelNotFoundError:
            return None


def _as_registry(registry: ModelRegistry | str | Path) -> ModelRegistry:
    """A directory means the JSON file registry in it (model/-only use and older callers)."""
    return registry if isinstance(registry, ModelRegistry) else ModelRegistry(registry)


def _same_dir(a: str | None, b: str) -> bool:
    return a is not None and Path(a).resolve() == Path(b).resolve()
