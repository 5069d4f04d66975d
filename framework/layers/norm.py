"""RMSNorm on the chip op, with the fused residual add when a residual is passed."""
from __future__ import annotations

import torch
from torch import nn

from chip import dispatch


class RMSNorm(nn.Module):
    def __init__(self, hidden_size: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(hidden_size))

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None):
        return dispatch("rms_norm", x.device.type)(x, self.weight, self.eps, residual)
