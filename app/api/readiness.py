"""What GET /ready reports: can this server answer chats and keep their history right now?

Ready means every model is loaded, the store answers a trivial read within READY_STORE_TIMEOUT_S,
and the durable outbox has room. /health stays liveness and never
touches the store; load balancers and the UI's degraded banner use /ready. This module knows
nothing about HTTP status codes.
"""
from __future__ import annotations

import asyncio
import time

from pydantic import BaseModel

from app.store.outage import ping
from app.store.outbox import Outbox
from app.store.session import Store

READY_STORE_TIMEOUT_S = 1.0  # an orchestrator's probe must get an answer well within its own


class StoreStatus(BaseModel):
    reachable: bool
    latency_ms: float | None = None  # the ping's round trip; None when it failed or timed out
    error: str | None = None  # why it is unreachable (driver message, or the timeout)


class OutboxStatus(BaseModel):
    depth: int  # answers accepted but not yet in the store
    capacity: int  # new chats get 503 once depth reaches it


class ReadinessPublic(BaseModel):
    ready: bool
    models: dict[str, str]  # model id -> ready / loading / failed
    store: StoreStatus
    outbox: OutboxStatus | None = None  # None only before the app has opened its outbox
    reasons: list[str]  # one sentence per thing that is not ready (empty when ready)


class StoreProbe:
    """Pings the store in a worker thread with a deadline. At most one ping is in flight: during
    an outage whose connections hang, repeated /ready calls share it instead of piling up
    threads; the caller gets an answer after `timeout_s` either way."""

    def __init__(self, store: Store, timeout_s: float = READY_STORE_TIMEOUT_S) -> None:
        self.store = store
        self._timeout_s = timeout_s
        self._in_flight: asyncio.Future[StoreStatus] | None = None

    async def check(self) -> StoreStatus:
        if self._in_flight is None or self._in_flight.done():
            self._in_flight = asyncio.ensure_future(asyncio.to_thread(_timed_ping, self.store))
        try:
            return await asyncio.wait_for(asyncio.shield(self._in_flight), self._timeout_s)
        except asyncio.TimeoutError:
            return StoreStatus(reachable=False,
                               error=f"no answer within {self._timeout_s:g} s")


def _timed_ping(store: Store) -> StoreStatus:
    started = time.perf_counter()
    try:
        ping(store)
    except Exception as e:  # noqa: BLE001 - any failure means "not reachable", with its reason
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()
        return StoreStatus(reachable=False, error=reason[0] if reason else type(e).__name__)
    return StoreStatus(reachable=True, latency_ms=round((time.perf_counter() - started) * 1e3, 2))


def outbox_status(outbox: Outbox | None) -> OutboxStatus | None:
    """How full the durable outbox is (None before the app has opened one)."""
    if outbox is None:
        return None
    return OutboxStatus(depth=outbox.depth, capacity=outbox.capacity)


def readiness(models: dict[str, str], store: StoreStatus,
              outbox: OutboxStatus | None) -> ReadinessPublic:
    reasons = [f"model {model_id} is {status}" for model_id, status in models.items()
               if status != "ready"]
    if not models:
        reasons.append("no model is configured")
    if not store.reachable:
        reasons.append(f"the store is unreachable ({store.error})")
    if outbox is not None and outbox.depth >= outbox.capacity:
        reasons.append(f"the outbox is full ({outbox.depth} answers waiting for the store)")
    return ReadinessPublic(ready=not reasons, models=models, store=store, outbox=outbox,
                           reasons=reasons)
