"""The only engine surface the API depends on.

Routes talk to an `EngineClient`: an async generator of cumulative `RequestOutput`s per request
(closing it aborts the request and frees its KV blocks), live `EngineStats`, and shutdown.
`AsyncEngineClient` adapts the framework's `AsyncEngine` to it and turns the engine's queue-full
refusal into `EngineBusyError` (HTTP 429).
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

import anyio

from shared import EngineStats, RequestOutput, SamplingParams


class EngineBusyError(Exception):
    """The engine's waiting queue is full; the client should retry later."""


class EngineUnavailableError(Exception):
    """The engine serving the request went away (a replica that crashed; Ray restarts it): the
    request failed and is safe to retry (HTTP 503 with Retry-After)."""


class EngineClient(Protocol):
    def generate(self, prompt_token_ids: list[int], params: SamplingParams,
                 request_id: str, priority: int = 0) -> AsyncIterator[RequestOutput]:
        """Cumulative outputs for one request, the last one with `finished=True`; a lower
        `priority` is admitted first when requests wait (vLLM's convention). Raises
        EngineBusyError before the first output when the queue is full. Closing the iterator
        early (client gone) aborts the request in the engine."""

    @property
    def stats(self) -> EngineStats:
        """The engine's latest step and cumulative counters."""

    async def shutdown(self) -> None:
        """Finish or abort what is running and stop the engine loop."""


class AsyncEngineClient:
    """EngineClient over `framework.engine.async_engine.AsyncEngine`."""

    def __init__(self, engine) -> None:
        self._engine = engine

    async def generate(self, prompt_token_ids: list[int], params: SamplingParams,
                       request_id: str, priority: int = 0) -> AsyncIterator[RequestOutput]:
        from framework.engine.async_engine import QueueFullError

        stream = self._engine.generate(prompt_token_ids, params, request_id, priority=priority)
        try:
            try:
                first = await anext(stream)
            except QueueFullError as e:
                raise EngineBusyError(str(e)) from e
            except StopAsyncIteration:
                return
            yield first
            async for output in stream:
                yield output
        finally:
            with anyio.CancelScope(shield=True):  # closing aborts the request in the engine
                await stream.aclose()

    @property
    def stats(self) -> EngineStats:
        return self._engine.stats

    async def shutdown(self) -> None:
        close = getattr(self._engine, "shutdown", None) or getattr(self._engine, "close", None)
        if close is not None:
            result = close()
            if hasattr(result, "__await__"):
                await result
