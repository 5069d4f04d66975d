"""Write this step's keys and values into their paged-cache slots, as a Triton kernel.

The torch reference is `chip.ops.kv_cache.store_kv_cache`. One program per token copies its
Hk * D contiguous values of k and of v into flat slot `slot_mapping[t]` of the caches.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from chip.dispatch import register


@triton.jit
def _store_kv_cache_kernel(k_ptr, v_ptr, k_cache_ptr, v_cache_ptr, slot_mapping_ptr,
                           row_size,
                           stride_k_tok, stride_v_tok, stride_cache_slot,
                           BLOCK: tl.constexpr):
    tok = tl.program_id(0)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < row_size
    slot = tl.load(slot_mapping_ptr + tok).to(tl.int64)  # slot * stride can pass 2^31
    k = tl.load(k_ptr + tok * stride_k_tok + offs, mask=mask)
    v = tl.load(v_ptr + tok * stride_v_tok + offs, mask=mask)
    dst = slot * stride_cache_slot + offs
    tl.store(k_cache_ptr + dst, k.to(k_cache_ptr.dtype.element_ty), mask=mask)
    tl.store(v_cache_ptr + dst, v.to(v_cache_ptr.dtype.element_ty), mask=mask)


@register("store_kv_cache", "cuda")
def store_kv_cache_triton(k: torch.Tensor, v: torch.Tensor, k_cache: torch.Tensor,
                          v_cache: torch.Tensor, slot_mapping: torch.Tensor) -> None:
    """k, v (T, Hk, D) -> slots slot_mapping (T,) of caches (num_blocks, block_size, Hk, D)."""
    num_tokens, num_kv_heads, head_dim = k.shape
    row_size = num_kv_heads * head_dim
    assert v.shape == k.shape and slot_mapping.shape == (num_tokens,), "k, v, slot_mapping disagree"
    assert k_cache.shape == v_cache.shape and k_cache.shape[2:] == (num_kv_heads, head_dim), \
        f"cache {tuple(k_cache.shape)} does not hold (Hk, D) = {(num_kv_heads, head_dim)}"
    for name, t in (("k", k), ("v", v)):
        assert t.stride(-1) == 1 and t.stride(-2) == head_dim, f"{name}'s (Hk, D) must be contiguous"
    assert k_cache.is_contiguous() and v_cache.is_contiguous(), "caches must be contiguous"
    if num_tokens == 0:
        return
    block = min(1024, triton.next_power_of_2(row_size))
    grid = (num_tokens, triton.cdiv(row_size, block))
    _store_kv_cache_kernel[grid](k, v, k_cache, v_cache, slot_mapping,
                                 row_size, k.stride(0), v.stride(0), row_size, BLOCK=block)
