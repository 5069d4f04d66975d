"""A request's LoRA adapter, in vLLM's shape: `LoRARequest(lora_name, lora_int_id, lora_path)`."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LoRARequest:
    lora_name: str  # what clients call it (the OpenAI `model` field)
    lora_int_id: int  # > 0, unique per adapter: the engine's key (prefix-cache salt, slots)
    lora_path: str  # a directory: adapter_config.json + adapter_model.safetensors (PEFT layout)

    def __post_init__(self) -> None:
        if not isinstance(self.lora_name, str) or not self.lora_name:
            raise ValueError(f"LoRARequest.lora_name must be a non-empty string, "
                             f"got {self.lora_name!r}")
        if not isinstance(self.lora_int_id, int) or self.lora_int_id < 1:
            raise ValueError(f"LoRARequest.lora_int_id must be an int >= 1, "
                             f"got {self.lora_int_id!r}")
