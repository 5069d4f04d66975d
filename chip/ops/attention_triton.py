"""Paged decode attention as a Triton kernel: one query token per sequence over its block table.

The torch reference is `chip.ops.attention.paged_attention` (varlen). This kernel covers the decode
case (every sequence has exactly one query row); the "cuda" registration sends steps with prefill
rows to the varlen kernel in `attention_prefill_triton.py`.

One program per (sequence, kv head) handles that head's whole GQA group of query heads at once, so
each key and value is read from memory once per group, with an online (flash-style) softmax over
tiles of BLOCK_N tokens. Tiles are gathered token by token through the block table, so their size
is free of the cache's block size and can shrink as the group grows, keeping registers unspilled.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from chip.dispatch import register
from chip.ops.attention_prefill_triton import paged_prefill_attention


@triton.jit
def _paged_decode_kernel(q_ptr, k_cache_ptr, v_cache_ptr, block_tables_ptr, context_lens_ptr, out_ptr,
                         scale, group_size, head_dim, block_size,
                         stride_q_seq, stride_q_head,
                         stride_kc_block, stride_kc_slot, stride_kc_head,
                         stride_bt_seq,
                         stride_o_seq, stride_o_head,
                         BLOCK_G: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    seq = tl.program_id(0)
    kv_head = tl.program_id(1)
    offs_g = tl.arange(0, BLOCK_G)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    mask_g = offs_g < group_size
    mask_d = offs_d < head_dim
    # ---- the group's queries: (BLOCK_G, BLOCK_D), pre-scaled
    q_heads = kv_head * group_size + offs_g
    q_ptrs = q_ptr + seq * stride_q_seq + q_heads[:, None] * stride_q_head + offs_d[None, :]
    q = tl.load(q_ptrs, mask=mask_g[:, None] & mask_d[None, :], other=0.0).to(tl.float32) * scale
    # ---- online softmax over the context, BLOCK_N tokens at a time
    context_len = tl.load(context_lens_ptr + seq)
    m_i = tl.full((BLOCK_G,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_G,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_G, BLOCK_D), dtype=tl.float32)
    for start in range(0, context_len, BLOCK_N):
        # Token t lives in slot t % block_size of physical block block_table[t // block_size].
        offs_t = start + offs_n
        mask_n = offs_t < context_len
        block = tl.load(block_tables_ptr + seq * stride_bt_seq + offs_t // block_size,
                        mask=mask_n, other=0).to(tl.int64)
        kv_offs = (block[:, None] * stride_kc_block + (offs_t % block_size)[:, None] * stride_kc_slot
                   + kv_head * stride_kc_head + offs_d[None, :])
        kv_mask = mask_n[:, None] & mask_d[None, :]
        k = tl.load(k_cache_ptr + kv_offs, mask=kv_mask, other=0.0).to(tl.float32)  # (BLOCK_N, BLOCK_D)
        v = tl.load(v_cache_ptr + kv_offs, mask=kv_mask, other=0.0).to(tl.float32)
        scores = tl.sum(q[:, None, :] * k[None, :, :], axis=2)  # (BLOCK_G, BLOCK_N)
        scores = tl.where(mask_n[None, :], scores, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(scores, axis=1))
        p = tl.exp(scores - m_new[:, None])
        alpha = tl.exp(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        acc = acc * alpha[:, None] + tl.sum(p[:, :, None] * v[None, :, :], axis=1)
        m_i = m_new
    # ---- normalize and write the group's outputs
    out = acc / l_i[:, None]
    o_ptrs = out_ptr + seq * stride_o_seq + q_heads[:, None] * stride_o_head + offs_d[None, :]
    tl.store(o_ptrs, out.to(out_ptr.dtype.element_ty), mask=mask_g[:, None] & mask_d[None, :])


def decode_tile(group_size: int, head_dim: int, max_tile_elements: int = 8192) -> dict:
    """Block sizes for the kernel: the (G, N, D) product tile stays within ~8K float32 values,
    which compiles without register spills on sm_80/sm_90 (checked with ptxas); N in [4, 64]."""
    block_g, block_d = triton.next_power_of_2(group_size), triton.next_power_of_2(head_dim)
    block_n = max(4, min(64, max_tile_elements // (block_g * block_d)))  # powers of two throughout
    return {"BLOCK_G": block_g, "BLOCK_N": block_n, "BLOCK_D": block_d}


def paged_decode_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                           block_tables: torch.Tensor, context_lens: torch.Tensor,
                           scale: float) -> torch.Tensor:
    """q (B, Hq, D), one query per sequence, the last of its context_lens[i] tokens -> (B, Hq, D)."""
    num_seqs, num_q_heads, head_dim = q.shape
    num_kv_heads, block_size = k_cache.shape[2], k_cache.shape[1]
    assert k_cache.shape == v_cache.shape and k_cache.shape[3] == head_dim, \
        f"cache {tuple(k_cache.shape)} vs head dim {head_dim}"
    assert num_q_heads % num_kv_heads == 0, f"Hq={num_q_heads} not a multiple of Hk={num_kv_heads}"
    assert block_tables.shape[0] == num_seqs and context_lens.shape == (num_seqs,), \
        "block_tables / context_lens must have one row per sequence"
    assert q.stride(-1) == 1 and k_cache.is_contiguous() and v_cache.is_contiguous()
    assert block_tables.stride(-1) == 1, "block_tables rows must be contiguous"
    out = torch.empty_like(q)
    if num_seqs == 0:
        return out
    group_size = num_q_heads // num_kv_heads
    _paged_decode_kernel[(num_seqs, num_kv_heads)](
        q, k_cache, v_cache, block_tables, context_lens, out,
        scale, group_size, head_dim, block_size,
        q.stride(0), q.stride(1),
        k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
        block_tables.stride(0),
        out.stride(0), out.stride(1),
        **decode_tile(group_size, head_dim))
    return out


@register("paged_attention", "cuda")
def paged_attention_cuda(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                         block_tables: torch.Tensor, cu_seqlens_q: torch.Tensor,
                         context_lens: torch.Tensor, scale: float) -> torch.Tensor:
    """The reference's varlen contract. Every scheduled sequence has >= 1 query row, so T == B
    (a shape check, no device sync) means pure decode; anything else takes the varlen kernel."""
    if q.shape[0] == block_tables.shape[0]:
        return paged_decode_attention(q, k_cache, v_cache, block_tables, context_lens, scale)
    return paged_prefill_attention(q, k_cache, v_cache, block_tables, cu_seqlens_q, context_lens,
                                   scale)
