"""Attention over the paged KV cache (or over the input alone when no metadata is set)."""
from __future__ import annotations

import torch
from torch import nn

from chip import dispatch
from framework.layers.attention_metadata import get_attention_metadata


class Attention(nn.Module):
    """Scaled dot-product attention with GQA. Holds no weights; owns this layer's KV cache views.

    The model runner assigns `k_cache` / `v_cache` (num_blocks, block_size, Hk, D) before serving.
    """

    def __init__(self, num_heads: int, num_kv_heads: int, head_dim: int):
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = num_heads, num_kv_heads, head_dim
        self.scale = head_dim ** -0.5
        self.k_cache: torch.Tensor | None = None
        self.v_cache: torch.Tensor | None = None

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q (T, Hq, D), k and v (T, Hk, D) -> (T, Hq, D)."""
        meta = get_attention_metadata()
        device = q.device.type
        if meta is None or self.k_cache is None:
            return dispatch("causal_attention", device)(q, k, v, self.scale)
        dispatch("store_kv_cache", device)(k, v, self.k_cache, self.v_cache, meta.slot_mapping)
        return dispatch("paged_attention", device)(
            q, self.k_cache, self.v_cache, meta.block_tables, meta.cu_seqlens_q,
            meta.context_lens, self.scale)
