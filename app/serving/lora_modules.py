"""LoRA adapters served by name, on the base model's engine (vLLM's `--lora-modules name=DIR`).

Each adapter is a `ServedModel` of its own in the `ModelHost`, so clients pick it with
`model=<adapter name>` and /v1/models lists it, exactly like a model version. Its engine is the
base model's engine with the adapter bound to every request: requests for the base and for any
number of adapters share the same steps (framework.lora). Retiring an adapter's entry (unload)
forgets the adapter; the base engine keeps running. An adapter stays on the base version it was
loaded on. With `--replicas` the adapter travels with each request to the base version's Ray
Serve replicas, which read it on first use (`app.serving.ray_replicas`).
"""
from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path

from app.serving.engine_client import AsyncEngineClient
from app.serving.model_host import ServedModel
from shared import LoRARequest

_lora_ids = itertools.count(1)  # lora_int_id for adapters named at runtime (unique per process)
_ids_lock = threading.Lock()


def parse_lora_modules(specs: list[str]) -> dict[str, Path]:
    """`name=DIR` strings -> {name: DIR}; ValueError naming the bad one."""
    modules: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ValueError(f"--lora-modules expects name=DIR, got {spec!r}")
        if name in modules:
            raise ValueError(f"--lora-modules names {name!r} twice")
        modules[name.strip()] = Path(path.strip())
    return modules


class _AdapterBoundEngine:
    """An AsyncEngine's surface with one adapter bound to every request; shutting it down
    forgets the adapter, never the engine (the base model and other adapters keep serving)."""

    def __init__(self, async_engine, lora_request: LoRARequest) -> None:
        self._engine, self.lora_request = async_engine, lora_request

    def generate(self, prompt, params=None, request_id=None, priority: int = 0):
        return self._engine.generate(prompt, params, request_id, priority=priority,
                                     lora_request=self.lora_request)

    @property
    def stats(self):
        return self._engine.stats

    async def shutdown(self) -> None:
        self._engine.engine.remove_lora(self.lora_request.lora_int_id)


def adapter_model(base: ServedModel, name: str, path: str | Path) -> ServedModel:
    """A ServedModel answering with `base` plus the adapter at `path`. The adapter is read and
    checked now (ValueError: not a LoRA engine, unreadable, wrong shapes or rank)."""
    with _ids_lock:
        lora_request = LoRARequest(name, next(_lora_ids), str(Path(path).resolve()))
    settings = {**base.engine_settings, "lora_name": name, "lora_path": lora_request.lora_path,
                "base_model": base.id}
    if hasattr(base.engine, "with_adapter"):  # Ray Serve replicas: the adapter rides along
        engine = base.engine.with_adapter(lora_request)
    else:
        async_engine, llm_engine = _lora_engine(base)
        llm_engine.add_lora(lora_request)
        engine = AsyncEngineClient(_AdapterBoundEngine(async_engine, lora_request))
    return replace(base, id=name, engine=engine, engine_settings=settings,
                   model_dir=lora_request.lora_path)


def _lora_engine(base: ServedModel):
    """(AsyncEngine, its LLMEngine) of an in-process base that serves adapters."""
    async_engine = getattr(base.engine, "_engine", None)
    llm_engine = getattr(async_engine, "engine", None)
    if llm_engine is None or llm_engine.lora is None:
        raise ValueError(f"model {base.id!r} is not served with LoRA enabled (--enable-lora)")
    return async_engine, llm_engine


def is_adapter(model: ServedModel) -> bool:
    return (isinstance(getattr(model.engine, "_engine", None), _AdapterBoundEngine)
            or getattr(model.engine, "lora_request", None) is not None)


def with_lora_modules(base_id: str, load_base: Callable[[], ServedModel],
                      modules: dict[str, Path]) -> dict[str, Callable[[], ServedModel]]:
    """Loaders for the host: the base, then one per adapter that waits for the base and binds to
    its engine (they answer 503 while the base loads, as the base does)."""
    base: Future[ServedModel] = Future()

    def load() -> ServedModel:
        try:
            model = load_base()
        except BaseException as e:
            base.set_exception(e)
            raise
        base.set_result(model)
        return model

    loaders: dict[str, Callable[[], ServedModel]] = {base_id: load}
    for name, path in modules.items():
        loaders[name] = lambda name=name, path=path: adapter_model(base.result(), name, path)
    return loaders
