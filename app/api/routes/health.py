"""GET /health (liveness + model load state) and GET /metrics (Prometheus). Both open."""
from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.api.deps import StateDep

router = APIRouter(tags=["health"])


@router.get("/health")
def read_health(state: StateDep) -> JSONResponse:
    models = state.host.status()
    ready = all(status == "ready" for status in models.values())
    body = {"status": "ok" if ready else "loading", "models": models,
            "store": {"written": state.writer.stats.num_written,
                      "failed": state.writer.stats.num_failed}}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics")
def read_metrics(state: StateDep) -> Response:
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
