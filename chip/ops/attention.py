"""Causal attention with GQA: one contiguous sequence, and paged over a block table.

Shapes: q (T, Hq, D); k, v (T, Hk, D) with Hq a multiple of Hk; KV cache (num_blocks, block_size, Hk, D).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from chip.dispatch import register


@register("causal_attention", "reference")
def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """Attention of T queries over the same T keys, causal. Returns (T, Hq, D)."""
    return _attend(q, k, v, scale, num_past=0)


@register("paged_attention", "reference")
def paged_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                    block_tables: torch.Tensor, cu_seqlens_q: torch.Tensor,
                    context_lens: torch.Tensor, scale: float) -> torch.Tensor:
    """Varlen attention over the paged cache (which already holds this step's keys).

    Sequence i owns query rows cu_seqlens_q[i]:cu_seqlens_q[i+1], which are the *last* tokens of its
    context_lens[i] tokens; its keys live in blocks block_tables[i]. Returns (T, Hq, D).
    """
    out = torch.empty_like(q)
    block_size = k_cache.shape[1]
    starts, lens = cu_seqlens_q.tolist(), context_lens.tolist()
    for i, ctx_len in enumerate(lens):
        q_start, q_end = starts[i], starts[i + 1]
        num_blocks = (ctx_len + block_size - 1) // block_size
        blocks = block_tables[i, :num_blocks]
        k = k_cache[blocks].flatten(0, 1)[:ctx_len]  # (ctx_len, Hk, D)
        v = v_cache[blocks].flatten(0, 1)[:ctx_len]
        out[q_start:q_end] = _attend(q[q_start:q_end], k, v, scale, num_past=ctx_len - (q_end - q_start))
    return out


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, num_past: int) -> torch.Tensor:
    # Query j sits at absolute position num_past + j and sees keys 0..num_past + j.
    num_q, num_k = q.shape[0], k.shape[0]
    group = q.shape[1] // k.shape[1]
    qh = q.transpose(0, 1)  # (Hq, Tq, D)
    kh = k.transpose(0, 1).repeat_interleave(group, dim=0)  # (Hq, Tk, D)
    vh = v.transpose(0, 1).repeat_interleave(group, dim=0)
    if num_past == 0 and num_q == num_k:
        out = F.scaled_dot_product_attention(qh, kh, vh, is_causal=True, scale=scale)
    else:
        rows = torch.arange(num_q, device=q.device).unsqueeze(1) + num_past
        mask = torch.arange(num_k, device=q.device).unsqueeze(0) <= rows  # (Tq, Tk)
        out = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask, scale=scale)
    return out.transpose(0, 1)
