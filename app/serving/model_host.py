"""Which model versions this server serves, and whether each is ready.

A `ModelHost` holds `ServedModel`s by id. Loading happens in a worker thread after the server is
up, so `/health` answers and requests for a model still loading get 503 instead of hanging.
The served id is the model directory's name (e.g. "stories260K-hf") unless given explicitly.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from app.serving.engine_client import EngineClient

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class ServedModel:
    id: str  # the model version name clients pass as `model`
    engine: EngineClient
    tokenizer: object  # TokenizerLike plus optional apply_chat_template / chat_template
    max_model_len: int  # prompt + completion tokens the engine accepts
    engine_settings: dict = field(default_factory=dict)  # stored with every answer
    model_dir: str | None = None  # the weights' directory, resolved (None: built in memory)
    created: int = field(default_factory=lambda: int(time.time()))


class ModelNotFoundError(LookupError):
    pass


class ModelLoadingError(RuntimeError):
    pass


class ModelHost:
    def __init__(self) -> None:
        self._models: dict[str, ServedModel] = {}
        self._loading: dict[str, asyncio.Task] = {}
        self._failed: dict[str, str] = {}
        self._retiring: set[asyncio.Task] = set()

    def add(self, model: ServedModel) -> None:
        self._models[model.id] = model

    def start_loading(self, model_id: str, load: Callable[[], ServedModel]) -> asyncio.Task:
        """Run `load()` in a thread; the model answers 503 until it returns."""
        async def run() -> None:
            try:
                self.add(await asyncio.to_thread(load))
                logger.info("model %s ready", model_id)
            except Exception as e:  # noqa: BLE001 - reported through /health and 503s
                logger.exception("loading model %s failed", model_id)
                self._failed[model_id] = str(e)
            finally:
                self._loading.pop(model_id, None)

        task = asyncio.get_running_loop().create_task(run())
        self._loading[model_id] = task
        return task

    async def swap(self, old_id: str, new: ServedModel) -> None:
        """Serve `new` in place of `old_id` (a promotion or rollback) without dropping a request:
        new requests go to `new` at once; requests already on the old engine finish there, and
        the old engine shuts down once it has nothing running or waiting."""
        old = self._models.pop(old_id, None)
        self._models = {new.id: new, **self._models}  # the new version becomes the default
        self._retire_unless_shared(old)

    def retire(self, model_id: str) -> None:
        """Stop serving `model_id` (a canary that ended); its in-flight requests finish first."""
        self._retire_unless_shared(self._models.pop(model_id, None))

    def _retire_unless_shared(self, old: ServedModel | None) -> None:
        # a relabelled version (same weights, now a registry id) keeps the old entry's engine
        if old is not None and all(m.engine is not old.engine for m in self._models.values()):
            self._retire(old)

    def _retire(self, old: ServedModel, drain_poll_s: float = 0.05) -> None:
        async def retire() -> None:
            # First a poll's grace: a request routed just before the swap reaches the engine's
            # queue on the next loop turns, and would otherwise not be counted yet.
            await asyncio.sleep(drain_poll_s)
            while old.engine.stats.num_running or old.engine.stats.num_waiting:
                await asyncio.sleep(drain_poll_s)
            await old.engine.shutdown()
            logger.info("model %s retired", old.id)

        task = asyncio.get_running_loop().create_task(retire())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def load_and_swap(self, old_id: str, load: Callable[[], ServedModel]) -> ServedModel:
        """Load a version in a worker thread (the old one keeps serving meanwhile), then swap."""
        new = await asyncio.to_thread(load)
        await self.swap(old_id, new)
        return new

    def get(self, model_id: str | None) -> ServedModel:
        """The ready model `model_id` (None or "": the only/first one). ModelLoadingError while it
        loads, ModelNotFoundError when this server does not serve it."""
        if not model_id:
            if self._models:
                return next(iter(self._models.values()))
            model_id = next(iter(self._loading), None) or ""
        if model_id in self._models:
            return self._models[model_id]
        if model_id in self._loading:
            raise ModelLoadingError(f"model {model_id!r} is still loading")
        if model_id in self._failed:
            raise ModelLoadingError(f"model {model_id!r} failed to load: {self._failed[model_id]}")
        raise ModelNotFoundError(f"The model '{model_id}' does not exist")

    def __contains__(self, model_id: str) -> bool:
        return model_id in self._models

    def ready(self) -> list[ServedModel]:
        return list(self._models.values())

    def status(self) -> dict[str, str]:
        states = {model_id: "ready" for model_id in self._models}
        states.update({model_id: "loading" for model_id in self._loading})
        states.update({model_id: "failed" for model_id in self._failed if model_id not in states})
        return states

    async def shutdown(self) -> None:
        for task in list(self._loading.values()):
            task.cancel()
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
        for model in self._models.values():
            await model.engine.shutdown()
