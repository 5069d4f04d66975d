"""Rotary embedding: a precomputed cos/sin table (a buffer, not a parameter) and the chip op."""
from __future__ import annotations

import torch
from torch import nn

from chip import dispatch
from chip.ops.rotary import rope_cos_sin


class RotaryEmbedding(nn.Module):
    def __init__(self, head_dim: int, max_positions: int, theta: float, scaling: dict | None = None):
        super().__init__()
        if torch.empty(0).is_meta:  # the loader's meta build computes one shared table afterwards;
            # computing it here would run torch's Python meta kernels, which import torch._dynamo
            table = torch.empty(max_positions, head_dim, dtype=torch.float32)
        else:
            table = rope_cos_sin(head_dim, max_positions, theta, scaling)
        self.register_buffer("cos_sin", table, persistent=False)

    def forward(self, positions: torch.Tensor, q: torch.Tensor, k: torch.Tensor):
        """positions (T,), q (T, Hq, D), k (T, Hk, D) -> rotated q, k."""
        return dispatch("rotary", q.device.type)(q, k, positions, self.cos_sin)
