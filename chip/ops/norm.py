"""RMSNorm, optionally fused with the residual add that precedes it."""
from __future__ import annotations

import torch

from chip.dispatch import register


@register("rms_norm", "reference")
def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float,
             residual: torch.Tensor | None = None):
    """y = x / rms(x) * weight, computed in float32.

    With `residual`, first x = x + residual and return (y, x) so the caller keeps the new residual.
    """
    if residual is not None:
        x = x + residual
        residual = x
    x32 = x.float()
    y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    y = (y * weight.float()).to(x.dtype)
    return y if residual is None else (y, residual)
