"""Answer a generation request as JSON or as an SSE stream, sharing one code path.

The first engine output is awaited before answering, so a full queue is still a clean 429 (not a
broken stream), and a full history outbox a clean 503. A client that disconnects — while waiting
or mid-stream — cancels the run, and closing the engine stream aborts the request in the engine,
freeing its KV blocks.

`on_finished` keeps the exchange (in the durable outbox). For a finished run it is awaited before
the answer's end reaches the client: the JSON response, or in a stream each choice's last chunk
(the one with its finish_reason) and the usage chunk, which are held back until then. So a client
that saw an answer end can count on it being kept. A run stopped by its client is kept too (the
text so far, finish_reason "abort").
"""
from __future__ import annotations

import asyncio
import json

import anyio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse

from app.api import history
from app.api.deps import get_state
from app.api.errors import APIError, error_body
from app.api.metrics import ServingMetrics
from app.serving.engine_client import EngineBusyError, EngineUnavailableError
from app.serving.generation import ChoiceDelta, GenerationRun

logger = logging.getLogger(__name__)

_DISCONNECT_POLL_S = 0.2

OnFinished = Callable[[], Awaitable[None]]


class _ClientGone(Exception):
    pass


async def respond(request: Request, run: GenerationRun, fmt, *, stream: bool, include_usage: bool,
                  metrics: ServingMetrics, endpoint: str,
                  on_finished: OnFinished) -> JSONResponse | StreamingResponse:
    history.admit(get_state(request))
    deltas = run.deltas()
    try:
        first = await _until_disconnect(request, _first_batch(deltas), deltas, metrics,
                                        run.model_id)
        if not stream:
            await _until_disconnect(request, _drain(deltas), deltas, metrics, run.model_id)
    except _ClientGone:
        await _keep_stopped(run, on_finished)
        raise APIError(499, "Client closed the request.", code="client_closed_request") from None
    if not stream:
        await _finish(run, metrics, endpoint, on_finished)
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
    except EngineUnavailableError as e:
        raise _unavailable(e) from e
    except ValueError as e:  # the engine refused the request before queueing it
        raise APIError(400, str(e), code="invalid_request") from e
    except StopAsyncIteration:
        return []


async def _drain(deltas: AsyncIterator[list[ChoiceDelta]]) -> None:
    try:
        async for _ in deltas:
            pass
    except EngineUnavailableError as e:
        raise _unavailable(e) from e


def _unavailable(e: EngineUnavailableError) -> APIError:
    """A replica died under the request: nothing was acknowledged, the client may retry."""
    return APIError(503, f"The engine serving this request went away: {e}",
                    code="replica_unavailable", headers={"Retry-After": "1"})


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
                raise _ClientGone()
    finally:
        if not task.done():
            task.cancel()
            with anyio.CancelScope(shield=True):
                await asyncio.gather(task, return_exceptions=True)
                await deltas.aclose()


async def _sse(run: GenerationRun, fmt, first: list[ChoiceDelta], deltas, include_usage: bool,
               metrics: ServingMetrics, endpoint: str, on_finished) -> AsyncIterator[str]:
    ended = False  # generation finished or failed; anything else leaving early is the client
    held: list[ChoiceDelta] = []  # choices' last deltas, sent once the exchange is kept
    try:
        for delta in first:
            if (event := _unless_last(delta, held, fmt, include_usage)) is not None:
                yield event
        async for batch in deltas:
            for delta in batch:
                if (event := _unless_last(delta, held, fmt, include_usage)) is not None:
                    yield event
        ended = True
        await _finish(run, metrics, endpoint, on_finished)  # on disk before the answer ends
        for delta in held:
            yield _frame(fmt, fmt.chunk(delta, include_usage))
        if include_usage and run.final is not None:
            yield _frame(fmt, fmt.usage_chunk(run.final))
    except Exception as e:  # noqa: BLE001 - headers are sent; report in-band, as OpenAI does
        ended = True
        logger.exception("generation %s failed mid-stream", run.request_id)
        failure = _unavailable(e) if isinstance(e, EngineUnavailableError) else None
        yield _frame(fmt, error_body(503, failure.message, code=failure.code) if failure else
                     error_body(500, f"generation failed: {type(e).__name__}"))
    finally:
        with anyio.CancelScope(shield=True):  # the abort must reach the engine even when cancelled
            await deltas.aclose()
            if not ended:
                metrics.client_aborts.labels(run.model_id).inc()
                await _keep_stopped(run, on_finished)
    yield getattr(fmt, "stream_end", "data: [DONE]\n\n")


def _unless_last(delta: ChoiceDelta, held: list[ChoiceDelta], fmt,
                 include_usage: bool) -> str | None:
    """The event for `delta`, or None when it ends its choice (then it waits in `held`)."""
    if delta.finish_reason is not None:
        held.append(delta)
        return None
    return _frame(fmt, fmt.chunk(delta, include_usage))


async def _finish(run: GenerationRun, metrics: ServingMetrics, endpoint: str,
                  on_finished: OnFinished) -> None:
    if run.final is None:
        return
    for output in run.final.outputs:
        metrics.requests.labels(run.model_id, endpoint, output.finish_reason or "unknown").inc()
    if run.latency_s is not None:
        metrics.e2e.labels(run.model_id).observe(run.latency_s)
    await on_finished()


async def _keep_stopped(run: GenerationRun, on_finished: OnFinished) -> None:
    """Keep what a stopped run produced; nothing reaches a client any more, so a failure is
    logged rather than raised."""
    if run.final is None:
        return
    try:
        await on_finished()
    except Exception:  # noqa: BLE001
        logger.exception("could not keep stopped generation %s", run.request_id)


def _frame(fmt, body) -> str:
    """One SSE event per body (chat and completions); a format with its own framing (the
    Responses API's typed events, several per delta) provides `sse(body)` and `stream_end`."""
    return fmt.sse(body) if hasattr(fmt, "sse") else _event(body)


def _event(body: dict) -> str:
    return f"data: {json.dumps(body, ensure_ascii=False, separators=(',', ':'))}\n\n"
