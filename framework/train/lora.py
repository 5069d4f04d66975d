"""LoRA adapters on linear layers: W x + (alpha / r) * B A x, merged back into W for export.

`apply_lora` swaps each targeted `Linear` for a `LoRALinear` in place and freezes every other
parameter; `merge_lora` swaps them back with W + scale * B @ A, so the exported state dict has the
original names and shapes and loads like any checkpoint.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from framework.layers import Linear
from framework.lora.adapter import LoRAWeights


class LoRALinear(nn.Module):
    def __init__(self, base: Linear, rank: int, alpha: float):
        super().__init__()
        self.base = base
        self.scale = alpha / rank
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features, dtype=base.weight.dtype))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank, dtype=base.weight.dtype))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))  # B = 0: starts as the base layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + F.linear(F.linear(x, self.lora_a), self.lora_b) * self.scale

    def merged(self) -> Linear:
        out = Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None)
        with torch.no_grad():
            out.weight.copy_(self.base.weight + self.scale * (self.lora_b @ self.lora_a))
            if self.base.bias is not None:
                out.bias.copy_(self.base.bias)
        return out.to(self.base.weight.device)


def apply_lora(model: nn.Module, rank: int, alpha: float, targets: tuple[str, ...]) -> int:
    """Wrap every `Linear` whose attribute name is in `targets`; freeze the rest. Returns count."""
    if rank < 1:
        raise ValueError(f"LoRA rank must be >= 1, got {rank}")
    for param in model.parameters():
        param.requires_grad_(False)
    wrapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if name in targets and isinstance(child, Linear):
                setattr(parent, name, LoRALinear(child, rank, alpha))
                wrapped += 1
    if wrapped == 0:
        raise ValueError(f"no Linear layer named any of {targets} to put LoRA on")
    return wrapped


def lora_weights(model: nn.Module) -> LoRAWeights:
    """A copy of every adapter's A and B by its layer's name (before `merge_lora`), for serving
    the adapter instead of a merged copy of the model."""
    layers, scales = {}, set()
    for name, module in model.named_modules():
        if isinstance(module, LoRALinear):
            layers[name] = (module.lora_a.detach().clone(), module.lora_b.detach().clone())
            scales.add(module.scale)
    if not layers:
        raise ValueError("the model has no LoRA adapters (apply_lora first)")
    assert len(scales) == 1, "apply_lora gives every layer one rank and alpha"
    rank = next(iter(layers.values()))[0].shape[0]
    return LoRAWeights(rank, scales.pop(), layers)


def merge_lora(model: nn.Module) -> int:
    """Fold every adapter into its base weight (in place) and unfreeze. Returns count merged."""
    merged = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LoRALinear):
                setattr(parent, name, child.merged())
                merged += 1
    for param in model.parameters():
        param.requires_grad_(True)
    return merged
