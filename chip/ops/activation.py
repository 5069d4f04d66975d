"""SwiGLU's gate: silu(gate) * up on a tensor holding [gate | up] along the last dim."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from chip.dispatch import register


@register("silu_and_mul", "reference")
def silu_and_mul(x: torch.Tensor) -> torch.Tensor:
    gate, up = x.chunk(2, dim=-1)  # (..., 2I) -> 2 x (..., I)
    return F.silu(gate) * up


@register("silu_and_mul", "cpu")
def silu_and_mul_cpu(x: torch.Tensor) -> torch.Tensor:
    """The reference's arithmetic with the product written into silu's output (one temporary less)."""
    gate, up = x.chunk(2, dim=-1)
    return F.silu(gate).mul_(up)
