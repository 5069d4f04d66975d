"""Answer a generation request as JSON or as an SSE stream, sharing one code path.

The first engine output is awaited before answering, so a full queue is still a clean 429 (not a
broken stream). A client that disconnects — while waiting or mid-stream — cancels the run, and
closing the engine stream aborts the request in the engine, freeing its KV blocks. Only runs that
finish are written to the history (`on_finished`), so nothing is stored half.
"""
from __future__ import annotations

import asyncio
import json

import anyio
import logging
from collections.abc import AsyncIterator, Callable

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse

from app.api.errors import APIError, error_body
from app.api.metrics import ServingMetrics
from app.serving.engine_client import EngineBusyError
from app.serving.generation import ChoiceDelta, GenerationRun

logger = logging.getLogger(__name__)

_DISCONNECT_POLL_S = 0.2


async def respond(request: Request, run: GenerationRun, fmt, *, stream: bool, include_usage: bool,
                  metrics: ServingMetrics, endpoint: str,
                  on_finished: Callable[[], None]) -> JSONResponse | StreamingResponse:
    deltas = run.deltas()
    first = await _until_disconnect(request, _first_batch(deltas), deltas, metrics, run.model_id)
    if not stream:
        rest = _drain(deltas)
        await _until_disconnect(request, rest, deltas, metrics, run.model_id)
        _finish(run, metrics, endpoint, on_finished)
        return JSONResponse(fmt.response(run.final))
    events = _sse(run, fmt, first, deltas, include_usage, metrics, endpoint, on_finished)
    return StreamingResponse(events, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _first_batch(deltas: AsyncIterator[list[ChoiceDelta]]) -> list[ChoiceDelta]:
    try:
        return await anext(deltas)
    except EngineBusyError as e:
        raise APIError(429, f"The server is overloaded: {e}", code="queue_full",
                       headers={"Retry-After": "1"}) from e
    except ValueError as e:  # the engine refused the request before queueing it
        raise APIError(400, str(e), code="invalid_request") from e
    except StopAsyncIteration:
        return []


async def _drain(deltas: AsyncIterator[list[ChoiceDelta]]) -> None:
    async for _ in deltas:
        pass


async def _until_disconnect(request: Request, work, deltas, metrics: ServingMetrics, model_id: str):
    """Await `work`, cancelling it (and aborting the engine request) if the client goes away."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=_DISCONNECT_POLL_S)
            if done:
                return task.result()
            if await request.is_disconnected():
                metrics.client_aborts.labels(model_id).inc()
                raise APIError(499, "Client closed the request.", code="client_closed_request")
    finally:
        if not task.done():
            task.cancel()
            with anyio.CancelScope(shield=True):
                await asyncio.gather(task, return_exceptions=True)
                await deltas.aclose()


async def _sse(run: GenerationRun, fmt, first: list[ChoiceDelta], deltas, include_usage: bool,
               metrics: ServingMetrics, endpoint: str, on_finished) -> AsyncIterator[str]:
    ended = False  # generation finished or failed; anything else leaving early is the client
    try:
        for delta in first:
            yield _event(fmt.chunk(delta, include_usage))
        async for batch in deltas:
            for delta in batch:
                yield _event(fmt.chunk(delta, include_usage))
        ended = True
        _finish(run, metrics, endpoint, on_finished)  # stored even if the client misses the usage
        if include_usage and run.final is not None:
            yield _event(fmt.usage_chunk(run.final))
    except Exception as e:  # noqa: BLE001 - headers are sent; report in-band, as OpenAI does
        ended = True
        logger.exception("generation %s failed mid-stream", run.request_id)
        yield _event(error_body(500, f"generation failed: {type(e).__name__}"))
    finally:
        if not ended:
            metrics.client_aborts.labels(run.model_id).inc()
        with anyio.CancelScope(shield=True):  # the abort must reach the engine even when cancelled
            await deltas.aclose()
    yield "data: [DONE]\n\n"


def _finish(run: GenerationRun, metrics: ServingMetrics, endpoint: str, on_finished) -> None:
    if run.final is None:
        return
    for output in run.final.outputs:
        metrics.requests.labels(run.model_id, endpoint, output.finish_reason or "unknown").inc()
    if run.latency_s is not None:
        metrics.e2e.labels(run.model_id).observe(run.latency_s)
    on_finished()


def _event(body: dict) -> str:
    return f"data: {json.dumps(body, ensure_ascii=False, separators=(',', ':'))}\n\n"
