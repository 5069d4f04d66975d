"""Request and response shapes of vLLM's runtime LoRA endpoints (/v1/load_lora_adapter, ...)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class LoadLoRAAdapterRequest(BaseModel):
    lora_name: str = Field(min_length=1, max_length=256)  # what clients then pass as `model`
    lora_path: str = Field(min_length=1)  # a PEFT adapter directory on the server


class UnloadLoRAAdapterRequest(BaseModel):
    lora_name: str = Field(min_length=1, max_length=256)
    lora_int_id: int | None = None  # accepted for vLLM compatibility; the name decides


class LoRAAdapterPublic(BaseModel):
    object: Literal["lora_adapter"] = "lora_adapter"
    id: str  # the adapter's name
    base_model: str  # the model version it runs on
    status: Literal["loaded", "unloaded"]
