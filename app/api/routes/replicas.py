"""GET /v1/replicas: each served version's engine replicas (Ray Serve) and their stats.

Every version is listed with its rollout status, so during a canary both applications show with
their own replicas, and after a hot swap only the new one does.

A version served by one in-process engine is listed with `replicas: []`. A replica appears once
it has finished a request (its stats travel with each answer's last item); `num_in_flight` is
what this front has open on it now. Needs a signed-in user or an API key, like /v1/models.
"""
from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from app.api.deps import CurrentUser, StateDep

router = APIRouter(prefix="/v1", tags=["replicas"])


class ReplicaPublic(BaseModel):
    replica_id: str
    node_id: str
    num_requests: int  # started on the replica since it came up
    num_in_flight: int  # this front's requests it answers now
    num_prefix_cache_queries: int
    num_prefix_cache_hits: int
    prefix_cache_hit_rate: float
    num_generation_tokens: int
    last_seen_s: float  # unix time of its last report


class ServedReplicasPublic(BaseModel):
    model: str  # the version these replicas serve
    status: str | None  # production or canary (the registry's), None for another loaded model
    application: str | None  # the Ray Serve application, None for an in-process engine
    replicas: list[ReplicaPublic]


class ReplicasPublic(BaseModel):
    object: str = "list"
    data: list[ServedReplicasPublic]


@router.get("/replicas", response_model=ReplicasPublic)
def read_replicas(state: StateDep, _user: CurrentUser) -> ReplicasPublic:
    return ReplicasPublic(data=[_served(m, state.rollout) for m in state.host.ready()])


def _served(model, rollout) -> ServedReplicasPublic:
    status = rollout.status_of(model.id) if rollout is not None else None
    views = getattr(model.engine, "replica_views", None)
    if views is None:  # one in-process engine, or an adapter (on its base version's replicas)
        return ServedReplicasPublic(model=model.id, status=status, replicas=[],
                                    application=getattr(model.engine, "app_name", None))
    replicas = [ReplicaPublic(
        replica_id=replica_id, node_id=view.stats.node_id, num_requests=view.stats.num_requests,
        num_in_flight=view.num_in_flight,
        num_prefix_cache_queries=view.stats.engine.num_prefix_cache_queries,
        num_prefix_cache_hits=view.stats.engine.num_prefix_cache_hits,
        prefix_cache_hit_rate=view.stats.engine.prefix_cache_hit_rate,
        num_generation_tokens=view.stats.engine.num_generation_tokens,
        last_seen_s=view.last_seen_s) for replica_id, view in sorted(views().items())]
    return ServedReplicasPublic(model=model.id, status=status,
                                application=model.engine.app_name, replicas=replicas)
