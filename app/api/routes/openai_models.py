"""GET /v1/models: the model versions this server has loaded."""
from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import CurrentUser, StateDep, resolve_model

router = APIRouter(prefix="/v1", tags=["openai"])


@router.get("/models")
def read_models(state: StateDep, _user: CurrentUser) -> dict:
    return {"object": "list", "data": [_model_card(m) for m in state.host.ready()]}


@router.get("/models/{model_id}")
def read_model(model_id: str, state: StateDep, _user: CurrentUser) -> dict:
    return _model_card(resolve_model(state, model_id))


def _model_card(model) -> dict:
    return {"id": model.id, "object": "model", "created": model.created, "owned_by": "flywheel",
            "max_model_len": model.max_model_len}
