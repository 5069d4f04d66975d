"""SwiGLU's gate: silu(gate) * up on a tensor holding [gate | up] along the last dim."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from chip.dispatch import register


@register("silu_and_mul", "reference")
def silu_and_mul(x: torch.Tensor) -> torch.Tensor:
    gate, up = x.chunk(2, dim=-1)  # (..., 2I) -> 2 x (..., I)
    return F.silu(gate) * up
