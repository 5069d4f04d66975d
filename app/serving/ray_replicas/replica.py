"""One engine replica: the class Ray Serve runs N copies of.

Each replica loads the model version itself (from a path every node can read) and runs its own
AsyncEngine; it knows nothing about HTTP, users or the store (the front process does). A
request's stream is cancelled by the front when its client goes away: Ray cancels `generate`
here, and closing the engine stream aborts the request and frees its KV blocks.

A LoRA adapter travels with each request (name and path): a replica reads it on its first
request for it, so a replica Ray starts later, or restarts, serves every adapter the front has.
"""
from __future__ import annotations

from collections.abc import AsyncIterator

import anyio

from app.serving.ray_replicas.messages import ReplicaOutput, ReplicaRequest, ReplicaStats
from shared import EngineConfig, LoRARequest


class EngineReplica:
    def __init__(self, model_dir: str, engine_config: EngineConfig, model_id: str) -> None:
        import ray
        from ray import serve

        from app.serving.loading import load_served_model

        self._model = load_served_model(model_dir, engine_config, model_id)
        replica = serve.get_replica_context().replica_id
        self._replica_id, self._actor_name = replica.unique_id, replica.to_full_id_str()
        self._node_id = ray.get_runtime_context().get_node_id()
        self._num_requests = 0
        self._adapters: dict[tuple[str, str], object] = {}  # (name, path) -> its EngineClient

    def describe(self) -> dict:
        """What the front needs to serve this version: the limit and the stored settings."""
        return {"max_model_len": self._model.max_model_len,
                "engine_settings": self._model.engine_settings}

    def stats(self) -> ReplicaStats:
        return ReplicaStats(self._replica_id, self._actor_name, self._node_id,
                            self._model.engine.stats,
                            self._num_requests)

    async def check_adapter(self, lora_request: LoRARequest) -> None:
        """Read the adapter now (ValueError when this model cannot serve it)."""
        await self._engine_for(lora_request)

    async def _engine_for(self, lora_request: LoRARequest | None):
        if lora_request is None:
            return self._model.engine
        from app.serving.lora_modules import adapter_model

        key = (lora_request.lora_name, lora_request.lora_path)
        if key not in self._adapters:  # reading the weights from disk: off the event loop
            adapter = await anyio.to_thread.run_sync(adapter_model, self._model, *key)
            self._adapters.setdefault(key, adapter.engine)
        return self._adapters[key]

    async def generate(self, request: ReplicaRequest) -> AsyncIterator[ReplicaOutput]:
        """Cumulative outputs tagged with this replica; the last carries its stats."""
        self._num_requests += 1
        engine = await self._engine_for(request.lora_request)
        stream = engine.generate(request.prompt_token_ids, request.params, request.request_id,
                                 priority=request.priority)
        try:
            async for output in stream:
                yield ReplicaOutput(output, self._replica_id,
                                    self.stats() if output.finished else None)
        finally:
            with anyio.CancelScope(shield=True):  # cancelled by the front: abort in the engine
                await stream.aclose()

    async def __del__(self) -> None:
        await self._model.engine.shutdown()
