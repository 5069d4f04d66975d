"""Serving LoRA adapters: reading them from disk (`adapter`) and managing the slots (`manager`).

The layers that apply them per token live in `framework.layers.lora`.
"""
from framework.lora.adapter import LoRAWeights, load_lora_adapter, save_lora_adapter
from framework.lora.manager import LORA_TARGETS, LoRAManager

__all__ = ["LORA_TARGETS", "LoRAManager", "LoRAWeights", "load_lora_adapter", "save_lora_adapter"]
