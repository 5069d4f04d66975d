"""POST /v1/load_lora_adapter and /v1/unload_lora_adapter: adapters added and removed at runtime
(vLLM's endpoints and bodies). Admins only: the path names a directory on the server.

A loaded adapter is served as `model=<lora_name>` on the production version's engine and listed by
/v1/models; unloading stops routing to it at once and forgets it once its requests are done.
"""
from __future__ import annotations

import asyncio

from fastapi import APIRouter

from app.api.deps import AdminUser, StateDep, resolve_model
from app.api.errors import APIError
from app.api.schemas.lora import LoadLoRAAdapterRequest, LoRAAdapterPublic, UnloadLoRAAdapterRequest
from app.serving.lora_modules import adapter_model, is_adapter

router = APIRouter(prefix="/v1", tags=["lora"])


@router.post("/load_lora_adapter", response_model=LoRAAdapterPublic)
async def load_lora_adapter(body: LoadLoRAAdapterRequest, state: StateDep,
                      _admin: AdminUser) -> LoRAAdapterPublic:
    name = body.lora_name
    public = state.rollout.public_name if state.rollout is not None else None
    if name in state.host or name == public:
        raise APIError(400, f"The model or lora adapter '{name}' is already loaded.",
                       param="lora_name", code="lora_adapter_exists")
    base = resolve_model(state, state.rollout.production_id if state.rollout is not None else "")
    try:
        adapter = await asyncio.to_thread(adapter_model, base, name, body.lora_path)  # reads disk
    except ValueError as e:
        raise APIError(400, str(e), param="lora_path", code="invalid_lora_adapter") from e
    if name in state.host:  # loaded by a concurrent call meanwhile
        raise APIError(400, f"The lora adapter '{name}' is already loaded.", param="lora_name",
                       code="lora_adapter_exists")
    state.host.add(adapter)
    return LoRAAdapterPublic(id=name, base_model=base.id, status="loaded")


@router.post("/unload_lora_adapter", response_model=LoRAAdapterPublic)
async def unload_lora_adapter(body: UnloadLoRAAdapterRequest, state: StateDep,
                        _admin: AdminUser) -> LoRAAdapterPublic:
    model = next((m for m in state.host.ready() if m.id == body.lora_name), None)
    if model is None or not is_adapter(model):
        raise APIError(404, f"The lora adapter '{body.lora_name}' cannot be found.",
                       param="lora_name", code="lora_adapter_not_found")
    state.host.retire(model.id)  # on the loop: it schedules the drain there
    return LoRAAdapterPublic(id=model.id, base_model=model.engine_settings["base_model"],
                             status="unloaded")
