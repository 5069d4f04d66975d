"""Streaming on asyncio: many `generate()` generators, one background task stepping the engine.

The blocking `LLMEngine.step()` runs in a worker thread (`asyncio.to_thread`) so the event loop
keeps serving. Everything that changes engine state (new requests, aborts, a model swap) is queued
by the loop and applied by the driver between steps, so the engine is only touched by one thread
at a time. Cancelling a generator aborts its request; its blocks are freed before the next step.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator

from framework.engine.llm_engine import LLMEngine, QueueFullError
from framework.engine.request_state import RequestState
from shared import CausalLM, EngineStats, LoRARequest, RequestOutput, SamplingParams, TokenizerLike

logger = logging.getLogger(__name__)

__all__ = ["AsyncEngine", "QueueFullError", "stream_deltas"]


class AsyncEngine:
    def __init__(self, engine: LLMEngine):
        self.engine = engine
        self._queues: dict[str, asyncio.Queue] = {}
        self._pending_adds: list[RequestState] = []
        self._pending_aborts: list[str] = []
        self._pending_swap: tuple[CausalLM, TokenizerLike, asyncio.Future] | None = None
        self._wakeup: asyncio.Event | None = None
        self._driver: asyncio.Task | None = None

    @property
    def stats(self) -> EngineStats:
        return self.engine.stats

    async def generate(self, prompt: str | list[int], params: SamplingParams | None = None,
                       request_id: str | None = None, priority: int = 0,
                       lora_request: LoRARequest | None = None) -> AsyncIterator[RequestOutput]:
        """Yield cumulative `RequestOutput`s (all text and ids so far) until the request finishes.

        Bad input raises ValueError before anything is queued; a full queue raises QueueFullError.
        """
        request_id = request_id or uuid.uuid4().hex
        if request_id in self._queues:
            raise ValueError(f"request_id {request_id!r} is already in flight")
        state = self.engine.make_request(request_id, prompt, params, priority, lora_request)
        if len(self.engine.scheduler.waiting) + len(self._pending_adds) >= self.engine.config.max_queue_len:
            raise QueueFullError("too many requests are waiting; retry later")
        queue: asyncio.Queue = asyncio.Queue()
        self._queues[request_id] = queue
        self._pending_adds.append(state)
        self._kick()
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if item.finished:
                    return
        finally:
            if self._queues.pop(request_id, None) is not None:  # left early: cancelled or closed
                self._pending_aborts.append(request_id)
                self._kick()

    async def swap_model(self, model: CausalLM, tokenizer: TokenizerLike) -> None:
        """Serve with another model from the next step on; in-flight requests continue on it."""
        if self._driver is None or self._driver.done():
            self.engine.swap_model(model, tokenizer)
            return
        done = asyncio.get_running_loop().create_future()
        self._pending_swap = (model, tokenizer, done)
        self._kick()
        await done

    async def shutdown(self) -> None:
        if self._driver is not None:
            self._driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._driver
            self._driver = None

    # ---- the driver
    def _kick(self) -> None:
        if self._driver is None or self._driver.done():
            self._wakeup = asyncio.Event()
            self._driver = asyncio.get_running_loop().create_task(self._drive())
        self._wakeup.set()

    async def _drive(self) -> None:
        while True:
            self._apply_pending()
            if not self.engine.has_unfinished_requests():
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            try:
                outputs = await asyncio.to_thread(self.engine.step)
            except Exception as e:  # a failed step fails its requests, not the server
                logger.exception("engine step failed")
                self._fail_all(e)
                continue
            for output in outputs:
                queue = self._queues.get(output.request_id)
                if queue is not None:
                    queue.put_nowait(output)
                    if output.finished:
                        del self._queues[output.request_id]

    def _apply_pending(self) -> None:
        aborts, self._pending_aborts = set(self._pending_aborts), []
        adds, self._pending_adds = self._pending_adds, []
        for request_id in aborts:
            self.engine.abort(request_id)
        for state in adds:
            if state.request_id in aborts:
                continue
            try:
                self.engine.enqueue(state)
            except (QueueFullError, ValueError) as e:
                self._deliver_error(state.request_id, e)
        if self._pending_swap is not None:
            model, tokenizer, done = self._pending_swap
            self._pending_swap = None
            try:
                self.engine.swap_model(model, tokenizer)
                done.set_result(None)
            except Exception as e:  # noqa: BLE001 - handed to the awaiting caller
                done.set_exception(e)

    def _deliver_error(self, request_id: str, error: BaseException) -> None:
        queue = self._queues.pop(request_id, None)
        if queue is not None:
            queue.put_nowait(error)

    def _fail_all(self, error: Exception) -> None:
        for request_id in list(self.engine.requests):
            self.engine.abort(request_id)
            self._deliver_error(request_id, RuntimeError(f"engine step failed: {error}"))


async def stream_deltas(outputs: AsyncIterator[RequestOutput]) -> AsyncIterator[RequestOutput]:
    """Turn cumulative outputs into deltas: each sample's text and ids only since the last yield."""
    seen: dict[int, tuple[int, int, int]] = {}  # sample index -> (chars, ids, logprob entries)
    async for output in outputs:
        deltas = []
        for completion in output.outputs:
            chars, ids, lps = seen.get(completion.index, (0, 0, 0))
            deltas.append(dataclasses.replace(
                completion, text=completion.text[chars:], token_ids=completion.token_ids[ids:],
                logprobs=None if completion.logprobs is None else completion.logprobs[lps:]))
            seen[completion.index] = (len(completion.text), len(completion.token_ids),
                                      len(completion.logprobs or []))
        yield dataclasses.replace(output, outputs=deltas)
