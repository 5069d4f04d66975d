"""Causal attention with GQA: one contiguous sequence, and paged over a block table.

Shapes: q (T, Hq, D); k, v (T, Hk, D) with Hq a multiple of Hk; KV cache (num_blocks, block_size, Hk, D).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from chip.dispatch import register
from chip.ops import paged_attention_native


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


# ---- CPU fast path -------------------------------------------------------------------------------
# Where the C kernel builds (bf16 and fp32) the whole step is one call that reads the blocks in
# place (`paged_attention_native`). Otherwise: decode rows (one new query) of every sequence are
# batched: their K/V are gathered from the block tables into one padded (B, L, Hk*D) tensor (a
# flat row gather of whole blocks, which is many times faster than advanced indexing on bf16),
# then two batched matmuls with a length mask. Each prefill chunk gets one 4-D SDPA of its own
# (few per step, each large; 4-D inputs keep SDPA on its fused CPU kernel). GQA never repeats keys
# or values per head.
@register("paged_attention", "cpu")
def paged_attention_cpu(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                        block_tables: torch.Tensor, cu_seqlens_q: torch.Tensor,
                        context_lens: torch.Tensor, scale: float) -> torch.Tensor:
    """Same contract as `paged_attention`."""
    if paged_attention_native.supports(q, k_cache):
        return paged_attention_native.paged_attention(q, k_cache, v_cache, block_tables, cu_seqlens_q,
                                                      context_lens, scale)
    starts = cu_seqlens_q.tolist()
    q_lens = [end - start for start, end in zip(starts, starts[1:])]
    decode = [i for i, n in enumerate(q_lens) if n == 1]
    if len(decode) == len(q_lens):  # pure decode: query row i belongs to sequence i
        return _decode_chunked(q, k_cache, v_cache, block_tables, context_lens, scale)
    out = torch.empty_like(q)
    if decode:
        index = torch.tensor(decode, device=q.device)
        rows = cu_seqlens_q[:-1].long()[index]
        out[rows] = _decode_chunked(q[rows], k_cache, v_cache, block_tables[index], context_lens[index], scale)
    ctx_lens = context_lens.tolist()
    for i, n in enumerate(q_lens):
        if n > 1:
            out[starts[i]:starts[i + 1]] = _prefill_one(q[starts[i]:starts[i + 1]], k_cache, v_cache,
                                                        block_tables[i], ctx_lens[i], scale)
    return out


def gather_blocks(cache: torch.Tensor, tables: torch.Tensor) -> torch.Tensor:
    """cache (num_blocks, block_size, Hk, D), tables (B, nb) -> (B, nb * block_size, Hk, D)."""
    num_blocks, block_size, num_kv_heads, head_dim = cache.shape
    # index_select of whole block rows with a flat index: one memcpy per block. Measured 10x faster
    # than F.embedding with a 2-D index (which this replaced) and 5x faster than advanced indexing.
    rows = cache.reshape(num_blocks, -1).index_select(0, tables.reshape(-1))
    return rows.view(tables.shape[0], -1, num_kv_heads, head_dim)


_DECODE_CHUNK_BYTES = 8 << 20  # gathered K+V per chunk: stays in cache between gather and matmul


def _decode_chunked(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                    block_tables: torch.Tensor, context_lens: torch.Tensor, scale: float) -> torch.Tensor:
    # Gathering the whole batch's K/V at once spills them out of cache before the matmuls read them;
    # a few MB at a time was 5x faster at B=64, L=640 (SmolLM2-135M shapes, one core). Chunks take
    # sequences in order of context length so each pads only to a similar length, not the batch max.
    lens = context_lens.tolist()
    bytes_per_token = 2 * k_cache.shape[2] * k_cache.shape[3] * k_cache.element_size()
    if len(lens) * max(lens) * bytes_per_token <= _DECODE_CHUNK_BYTES:
        return _decode_batch(q, k_cache, v_cache, block_tables, context_lens, scale)
    order = sorted(range(len(lens)), key=lens.__getitem__)
    out = torch.empty_like(q)
    start = 0
    while start < len(order):
        end = start + 1
        while end < len(order) and (end + 1 - start) * lens[order[end]] * bytes_per_token <= _DECODE_CHUNK_BYTES:
            end += 1
        index = torch.tensor(order[start:end], device=q.device)
        out[index] = _decode_batch(q[index], k_cache, v_cache, block_tables[index], context_lens[index], scale)
        start = end
    return out


def _decode_batch(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                  block_tables: torch.Tensor, context_lens: torch.Tensor, scale: float) -> torch.Tensor:
    # Each sequence's gathered keys are one contiguous (L, Hk*D) matrix. Queries are laid out block-
    # diagonally, (Hq, Hk*D) with q_h in its kv head's columns, so one bmm against the transposed
    # keys gives every head's scores without copying K per head (Hk x the FLOPs, which are cheap
    # here; memory traffic is what decode attention costs). The output keeps its diagonal blocks.
    num_seqs, num_heads, head_dim = q.shape
    block_size, num_kv_heads = k_cache.shape[1], k_cache.shape[2]
    group, width = num_heads // num_kv_heads, num_kv_heads * head_dim
    num_blocks = -(-int(context_lens.max()) // block_size)
    tables = block_tables[:, :num_blocks].long()  # (B, nb)
    max_len = num_blocks * block_size
    k = gather_blocks(k_cache, tables).view(num_seqs, max_len, width)  # (B, L, Hk*D)
    v = gather_blocks(v_cache, tables).view(num_seqs, max_len, width)
    q_diag = q.new_zeros(num_seqs, num_kv_heads, group, num_kv_heads, head_dim)
    torch.diagonal(q_diag, dim1=1, dim2=3).copy_(
        q.view(num_seqs, num_kv_heads, group, head_dim).permute(0, 2, 3, 1))
    scores = torch.bmm(q_diag.view(num_seqs, num_heads, width), k.transpose(1, 2))  # (B, Hq, L)
    scores = scores.float().mul_(scale)
    padding = torch.arange(max_len, device=q.device) >= context_lens.unsqueeze(1)  # (B, L)
    probs = scores.masked_fill_(padding.unsqueeze(1), float("-inf")).softmax(dim=-1).to(v.dtype)
    out = torch.bmm(probs, v).view(num_seqs, num_kv_heads, group, num_kv_heads, head_dim)
    out = torch.diagonal(out, dim1=1, dim2=3)  # (B, group, D, Hk): head (j, g) with kv head j
    return out.permute(0, 3, 1, 2).reshape(num_seqs, num_heads, head_dim)


def _prefill_one(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                 block_table: torch.Tensor, ctx_len: int, scale: float) -> torch.Tensor:
    num_q, num_heads, head_dim = q.shape
    block_size, num_kv_heads = k_cache.shape[1], k_cache.shape[2]
    tables = block_table[:-(-ctx_len // block_size)].long().unsqueeze(0)  # (1, nb)
    k = gather_blocks(k_cache, tables)[0, :ctx_len].transpose(0, 1).unsqueeze(0)  # (1, Hk, ctx, D)
    v = gather_blocks(v_cache, tables)[0, :ctx_len].transpose(0, 1).unsqueeze(0)
    qh = q.transpose(0, 1).unsqueeze(0)  # (1, Hq, Tq, D)
    if ctx_len == num_q:
        out = F.scaled_dot_product_attention(qh, k, v, is_causal=True, scale=scale, enable_gqa=True)
    else:  # a later chunk: query j sits at position ctx_len - num_q + j
        rows = torch.arange(num_q, device=q.device).unsqueeze(1) + (ctx_len - num_q)
        mask = torch.arange(ctx_len, device=q.device).unsqueeze(0) <= rows  # (Tq, ctx)
        out = F.scaled_dot_product_attention(qh, k, v, attn_mask=mask, scale=scale, enable_gqa=True)
    return out[0].transpose(0, 1)
