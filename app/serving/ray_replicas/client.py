"""`EngineClient` over a Ray Serve deployment of engine replicas.

Routes see the same surface as one local engine: cumulative outputs per request (closing the
iterator cancels the replica's generator, which aborts the request there), stats and shutdown.
A replica that dies under a request turns into `EngineUnavailableError` (HTTP 503, retryable)
for that request; Ray Serve starts a replacement, and the front keeps every answer it
acknowledged because the outbox lives here, not in a replica.

A LoRA adapter is served by `with_adapter`: a client over the same replicas that sends the
adapter with each request (replicas read it on first use, `replica.py`).

Stats: each request's last item carries its replica's stats, so the client knows every replica
that answered recently (`replicas`); `stats` sums them, with running/waiting counted here from
the requests this process has open (exact, and what draining a retired version waits for).
"""
from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import AsyncIterator

import anyio

from app.serving.engine_client import EngineBusyError, EngineUnavailableError
from app.serving.ray_replicas.messages import ReplicaOutput, ReplicaRequest, ReplicaStats
from shared import EngineStats, LoRARequest, RequestOutput, SamplingParams

logger = logging.getLogger(__name__)

_SUMMED = [f.name for f in dataclasses.fields(EngineStats)
           if f.name.startswith("num_") and f.name not in ("num_running", "num_waiting")]


@dataclasses.dataclass(slots=True)
class ReplicaView:
    stats: ReplicaStats  # as of the replica's last finished request
    num_in_flight: int = 0  # requests of this process it is answering now
    last_seen_s: float = 0.0  # time.time() of that last report


class ReplicaEngineClient:
    def __init__(self, handle, app_name: str) -> None:
        self._handle, self.app_name = handle, app_name
        self._in_flight: dict[str, str | None] = {}  # request id -> replica id (None: routing)
        self.replicas: dict[str, ReplicaView] = {}

    async def generate(self, prompt_token_ids: list[int], params: SamplingParams,
                       request_id: str, priority: int = 0,
                       lora_request: LoRARequest | None = None) -> AsyncIterator[RequestOutput]:
        request = ReplicaRequest(list(prompt_token_ids), params, request_id, priority,
                                 lora_request)
        self._in_flight[request_id] = None
        stream, finished = None, False
        try:
            stream = self._handle.options(stream=True).generate.remote(request)
            async for item in stream:
                self._seen(request_id, item)
                finished = item.output.finished
                yield item.output
        except Exception as e:  # noqa: BLE001 - sorted by what the client can do about it
            replica_id = self._in_flight.get(request_id)
            error = _as_engine_error(e, replica_id, self.app_name)
            if isinstance(error, EngineUnavailableError) and replica_id is not None:
                self.replicas.pop(replica_id, None)  # dead: Serve starts another in its place
            if error is e:
                raise
            raise error from e
        finally:
            self._in_flight.pop(request_id, None)
            if stream is not None and not finished:  # client gone or failure: stop the replica
                stream.cancel()  # not awaited: returns at once, Ray delivers it to the replica

    def with_adapter(self, lora_request: LoRARequest) -> "AdapterReplicaClient":
        """A client for `lora_request` on these replicas, once one replica has read and checked
        it (ValueError when the model cannot serve it). Blocking: call it in a worker thread."""
        try:
            self._handle.check_adapter.remote(lora_request).result()
        except Exception as e:  # noqa: BLE001 - the replica's refusal, or Ray's failure
            if isinstance(cause := getattr(e, "cause", None), ValueError):
                raise ValueError(str(cause)) from e  # not Ray's wrapper and its traceback
            error = _as_engine_error(e, None, self.app_name)
            if error is e:
                raise
            raise error from e
        return AdapterReplicaClient(self, lora_request)

    def _seen(self, request_id: str, item: ReplicaOutput) -> None:
        self._in_flight[request_id] = item.replica_id
        if item.stats is not None:
            view = self.replicas.setdefault(item.replica_id, ReplicaView(item.stats))
            view.stats, view.last_seen_s = item.stats, time.time()

    def replica_views(self) -> dict[str, ReplicaView]:
        """Each replica known to have answered (and not known to have died since), with its
        requests open from here."""
        counts: dict[str, int] = {}
        for replica_id in self._in_flight.values():
            if replica_id is not None:
                counts[replica_id] = counts.get(replica_id, 0) + 1
        for replica_id, view in self.replicas.items():
            view.num_in_flight = counts.get(replica_id, 0)
        return dict(self.replicas)

    @property
    def stats(self) -> EngineStats:
        total = EngineStats(num_running=len(self._in_flight))
        for view in self.replicas.values():
            for name in _SUMMED:
                setattr(total, name, getattr(total, name) + getattr(view.stats.engine, name))
        return total

    async def shutdown(self) -> None:
        from ray import serve

        await anyio.to_thread.run_sync(serve.delete, self.app_name)
        logger.info("deleted Ray Serve application %s", self.app_name)


class AdapterReplicaClient:
    """The base version's replicas with one adapter sent along with every request. Shutting it
    down only stops routing to the adapter; the replicas (the base's) keep running."""

    def __init__(self, base: ReplicaEngineClient, lora_request: LoRARequest) -> None:
        self._base, self.lora_request = base, lora_request
        self._num_open = 0  # this adapter's requests open now: what retiring it waits for

    async def generate(self, prompt_token_ids: list[int], params: SamplingParams,
                       request_id: str, priority: int = 0) -> AsyncIterator[RequestOutput]:
        self._num_open += 1
        stream = self._base.generate(prompt_token_ids, params, request_id, priority,
                                     self.lora_request)
        try:
            async for output in stream:
                yield output
        finally:
            self._num_open -= 1
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    @property
    def app_name(self) -> str:
        return self._base.app_name  # listed by /v1/replicas; its replicas are the base's

    @property
    def stats(self) -> EngineStats:
        return EngineStats(num_running=self._num_open)

    async def shutdown(self) -> None:
        pass  # replicas keep what they read of the adapter; nothing routes to it any more


def _as_engine_error(e: Exception, replica_id: str | None, app_name: str) -> Exception:
    """What a failed request raises to the routes. Whatever the replica itself raised comes back
    as that exception (Ray's RayTaskError subclasses it: a ValueError stays a 400, a full queue
    a 429); Serve's back-pressure is a full queue too. Any other Ray or Serve failure means the
    replica (or the way to it) went away before the answer was acknowledged: retryable, 503.
    Serve raises several kinds for that (the actor died, the replica was removed from routing
    just before the request reached it, the application is redeploying), so they are matched by
    their base classes rather than one by one."""
    import ray.exceptions as rex
    import ray.serve.exceptions as sex

    if isinstance(e, (EngineBusyError, rex.RayTaskError)):
        return e
    if isinstance(e, sex.BackPressureError):
        return EngineBusyError(f"{app_name}: every replica's queue is full ({e})")
    if isinstance(e, (rex.RayError, sex.RayServeException)):
        return EngineUnavailableError(f"replica {replica_id or '?'} of {app_name} went away "
                                      f"under the request ({type(e).__name__}); retry")
    return e
