"""Factories for LoRA tests: random adapters written in PEFT's layout, and the merged reference."""
from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from framework.lora import LORA_TARGETS, LoRAWeights, save_lora_adapter


def write_random_adapter(model: nn.Module, path: Path, rank: int, alpha: float, seed: int,
                         targets: tuple[str, ...] = LORA_TARGETS, std: float = 0.1) -> LoRAWeights:
    """A random adapter on every `targets` layer of `model`, saved at `path`; returns it."""
    gen = torch.Generator().manual_seed(seed)
    layers = {}
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in targets:
            weight = module.weight
            lora_a = torch.randn(rank, weight.shape[1], generator=gen) * std
            lora_b = torch.randn(weight.shape[0], rank, generator=gen) * std
            layers[name] = (lora_a, lora_b)
    weights = LoRAWeights(rank, alpha / rank, layers)
    save_lora_adapter(path, weights, alpha)
    return weights


def merged_copy(model: nn.Module, weights: LoRAWeights) -> nn.Module:
    """Reference: a copy of `model` with W + scaling * B @ A folded into every adapted layer (in
    float64, then cast back)."""
    merged = copy.deepcopy(model)
    modules = dict(merged.named_modules())
    with torch.no_grad():
        for name, (lora_a, lora_b) in weights.layers.items():
            weight = modules[name].weight
            delta = weights.scaling * (lora_b.double() @ lora_a.double())
            weight.copy_((weight.double() + delta).to(weight.dtype))
    return merged
