"""GET /health (liveness + model load state), GET /ready (readiness: models, store, outbox) and
GET /metrics (Prometheus). All open.

/health never touches the store, so it answers fast during a store outage; /ready pings the store
with a short deadline and is what load balancers and the UI's degraded banner use.
"""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.api.deps import StateDep, get_state
from app.api.readiness import ReadinessPublic, StoreProbe, outbox_status, readiness

router = APIRouter(tags=["health"])


@router.get("/health")
async def read_health(request: Request) -> JSONResponse:
    # On the event loop, with no sync dependency: those run in the threadpool that sync handlers
    # share, and requests stuck on a locked store can fill it; liveness must not queue behind them.
    state = get_state(request)
    models = state.host.status()
    ready = all(status == "ready" for status in models.values())
    body = {"status": "ok" if ready else "loading", "models": models,
            "store": {"written": state.writer.stats.num_written,
                      "failed": state.writer.stats.num_failed}}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/ready", response_model=ReadinessPublic,
            responses={503: {"model": ReadinessPublic, "description": "not ready"}})
async def read_readiness(request: Request) -> JSONResponse:
    state = get_state(request)  # not StateDep: its answer must not wait on the threadpool either
    store = await _store_probe(request, state).check()
    report = readiness(state.host.status(), store, outbox_status(state.outbox))
    return JSONResponse(report.model_dump(), status_code=200 if report.ready else 503)


def _store_probe(request: Request, state) -> StoreProbe:
    # one probe per app (and per store, should the state ever be rebuilt)
    probe = getattr(request.app.state, "store_probe", None)
    if probe is None or probe.store is not state.store:
        probe = request.app.state.store_probe = StoreProbe(state.store)
    return probe


@router.get("/metrics")
def read_metrics(state: StateDep) -> Response:
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
