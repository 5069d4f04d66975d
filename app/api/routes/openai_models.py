"""GET /v1/models: the public model name and the versions behind it that this server has loaded.

The public name (e.g. "stories260K-hf") is listed first while its production version is ready,
with `version` (the production version id) and `canary` (the canary's id, or null); each loaded
version is listed under its own id with its `status` (production / canary, null otherwise).
"""
from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import CurrentUser, StateDep, resolve_model

router = APIRouter(prefix="/v1", tags=["openai"])


@router.get("/models")
def read_models(state: StateDep, _user: CurrentUser) -> dict:
    rollout = state.rollout
    cards = [_model_card(m, state) for m in state.host.ready()]
    if (rollout is not None and rollout.public_name != rollout.production_id
            and rollout.production_id in state.host):
        cards.insert(0, _public_card(state))
    return {"object": "list", "data": cards}


@router.get("/models/{model_id}")
def read_model(model_id: str, state: StateDep, _user: CurrentUser) -> dict:
    rollout = state.rollout
    if rollout is not None and model_id == rollout.public_name != rollout.production_id:
        resolve_model(state, model_id)  # 404 / 503 while production is not ready
        return _public_card(state)
    return _model_card(resolve_model(state, model_id), state)


def _public_card(state) -> dict:
    rollout = state.rollout
    production = state.host.get(rollout.production_id)
    return {**_model_card(production, state), "id": rollout.public_name,
            "version": rollout.production_id, "canary": rollout.canary_id}


def _model_card(model, state) -> dict:
    status = state.rollout.status_of(model.id) if state.rollout is not None else None
    return {"id": model.id, "object": "model", "created": model.created, "owned_by": "flywheel",
            "max_model_len": model.max_model_len, "version": model.id, "status": status}
