"""Varlen causal attention over the paged KV cache (prefill chunks, mixed steps) as a Triton kernel.

The torch reference is `chip.ops.attention.paged_attention`: sequence i owns query rows
cu_seqlens_q[i]:cu_seqlens_q[i+1], the last tokens of its context_lens[i] tokens, whose keys and
values (this step's included) sit in the blocks of block_tables[i].

One program per (sequence, query head, BLOCK_M query rows): a flash-attention loop over BLOCK_N-token
tiles gathered through the block table, stopping at the tile's last causal position. Products run
in float32 on the tensor cores (tf32 for 16-bit inputs, which represents bf16 and fp16 exactly;
exact IEEE for float32 inputs); the Triton interpreter cannot multiply 16-bit tiles at all.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _paged_prefill_kernel(q_ptr, k_cache_ptr, v_cache_ptr, block_tables_ptr, cu_seqlens_q_ptr,
                          context_lens_ptr, out_ptr,
                          scale, group_size, head_dim, block_size,
                          stride_q_tok, stride_q_head,
                          stride_kc_block, stride_kc_slot, stride_kc_head,
                          stride_bt_seq,
                          stride_o_tok, stride_o_head,
                          BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
                          DOT_PRECISION: tl.constexpr):
    seq = tl.program_id(0)
    head = tl.program_id(1)
    m_block = tl.program_id(2)
    kv_head = head // group_size
    q_start = tl.load(cu_seqlens_q_ptr + seq)
    q_len = tl.load(cu_seqlens_q_ptr + seq + 1) - q_start
    context_len = tl.load(context_lens_ptr + seq)
    num_past = context_len - q_len  # query row j sits at position num_past + j
    offs_m = m_block * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    mask_m = offs_m < q_len
    mask_d = offs_d < head_dim
    # ---- this tile's queries (BLOCK_M, BLOCK_D), pre-scaled
    q_ptrs = q_ptr + (q_start + offs_m)[:, None] * stride_q_tok + head * stride_q_head + offs_d[None, :]
    q = tl.load(q_ptrs, mask=mask_m[:, None] & mask_d[None, :], other=0.0).to(tl.float32) * scale
    # ---- keys up to the tile's last causal position (none for tiles past the sequence's rows)
    kv_end = tl.minimum(context_len, num_past + (m_block + 1) * BLOCK_M)
    kv_end = tl.where(m_block * BLOCK_M < q_len, kv_end, 0)
    m_i = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
    for start in range(0, kv_end, BLOCK_N):
        offs_t = start + offs_n
        mask_n = offs_t < kv_end
        block = tl.load(block_tables_ptr + seq * stride_bt_seq + offs_t // block_size,
                        mask=mask_n, other=0).to(tl.int64)
        kv_offs = (block[:, None] * stride_kc_block + (offs_t % block_size)[:, None] * stride_kc_slot
                   + kv_head * stride_kc_head + offs_d[None, :])
        kv_mask = mask_n[:, None] & mask_d[None, :]
        k = tl.load(k_cache_ptr + kv_offs, mask=kv_mask, other=0.0).to(tl.float32)  # (BLOCK_N, BLOCK_D)
        v = tl.load(v_cache_ptr + kv_offs, mask=kv_mask, other=0.0).to(tl.float32)
        scores = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION)  # (BLOCK_M, BLOCK_N)
        causal = offs_t[None, :] <= (num_past + offs_m)[:, None]
        scores = tl.where(causal & mask_n[None, :], scores, float("-inf"))
        # Rows past q_len see no key: keep their max finite so exp() below stays NaN-free.
        m_new = tl.maximum(m_i, tl.max(scores, axis=1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.exp(scores - m_safe[:, None])
        alpha = tl.exp(m_i - m_safe)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        acc = acc * alpha[:, None] + tl.dot(p, v, input_precision=DOT_PRECISION)
        m_i = m_new
    # ---- normalize and write this tile's rows
    out = acc / tl.where(l_i > 0, l_i, 1.0)[:, None]
    rows = (q_start + offs_m)[:, None]
    o_ptrs = out_ptr + rows * stride_o_tok + head * stride_o_head + offs_d[None, :]
    tl.store(o_ptrs, out.to(out_ptr.dtype.element_ty), mask=mask_m[:, None] & mask_d[None, :])


def prefill_tile(head_dim: int, dtype: torch.dtype) -> dict:
    """Tile sizes: tl.dot needs every dimension >= 16. At D = 128, 32 x 32 tiles compile unspilled
    with tf32 products; exact float32 products need more registers, so their key tiles are halved."""
    exact = dtype == torch.float32
    return {"BLOCK_M": 32, "BLOCK_N": 16 if exact else 32,
            "BLOCK_D": max(16, triton.next_power_of_2(head_dim)),
            "DOT_PRECISION": "ieee" if exact else "tf32"}


def paged_prefill_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                            block_tables: torch.Tensor, cu_seqlens_q: torch.Tensor,
                            context_lens: torch.Tensor, scale: float) -> torch.Tensor:
    """The reference's varlen contract: q (T, Hq, D) -> (T, Hq, D)."""
    num_tokens, num_q_heads, head_dim = q.shape
    num_seqs = block_tables.shape[0]
    num_kv_heads, block_size = k_cache.shape[2], k_cache.shape[1]
    assert k_cache.shape == v_cache.shape and k_cache.shape[3] == head_dim, \
        f"cache {tuple(k_cache.shape)} vs head dim {head_dim}"
    assert num_q_heads % num_kv_heads == 0, f"Hq={num_q_heads} not a multiple of Hk={num_kv_heads}"
    assert cu_seqlens_q.shape == (num_seqs + 1,) and context_lens.shape == (num_seqs,), \
        "cu_seqlens_q / context_lens must match block_tables' sequences"
    assert q.stride(-1) == 1 and k_cache.is_contiguous() and v_cache.is_contiguous()
    assert block_tables.stride(-1) == 1, "block_tables rows must be contiguous"
    out = torch.empty_like(q)
    if num_tokens == 0:
        return out
    tile = prefill_tile(head_dim, q.dtype)
    max_q_len = int((cu_seqlens_q[1:] - cu_seqlens_q[:-1]).max())  # one device sync per step
    grid = (num_seqs, num_q_heads, triton.cdiv(max_q_len, tile["BLOCK_M"]))
    _paged_prefill_kernel[grid](
        q, k_cache, v_cache, block_tables, cu_seqlens_q, context_lens, out,
        scale, num_q_heads // num_kv_heads, head_dim, block_size,
        q.stride(0), q.stride(1),
        k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
        block_tables.stride(0),
        out.stride(0), out.stride(1),
        **tile)
    return out
