"""Paged attention for a variable-length batch by the C kernel in chip/native/paged_attention.c.

It reads each sequence's blocks in place, so unlike the torch path it copies no keys or values,
pads nothing, and needs no per-head copies for GQA; decode tokens and prefill chunks go in one
call. Measured at SmolLM2-135M shapes, one thread (benchmarks/chip_ops.py has the comparison):
decode of 64 sequences with contexts around 350 runs 2-3x faster than gather + batched matmuls,
and a 288-token prefill about 2x faster than torch's flash-attention CPU kernel. Prefill rows then
went into tiles (bf16 with AVX-512, both products on AMX where the CPU has it): another 2.9-3.9x
with AMX, 1.7-1.9x without (benchmarks/paged_attention_ab.py). Decode rows then went by GQA group
(the query heads sharing a kv head take each loaded key and value row together): 1.16-1.23x the row
kernel on decode-only batches of 1-64 sequences at contexts 128-1024 (`--decode`).
"""
from __future__ import annotations

import ctypes

import torch

from chip.native import build

_DTYPE_CODES = {torch.bfloat16: 0, torch.float32: 1}
MAX_HEAD_DIM, MAX_BLOCK_SIZE = 512, 256  # the kernel's per-row scratch lives on the stack


_SIGNATURE = (ctypes.c_int, *[ctypes.c_void_p] * 4, ctypes.c_int64, *[ctypes.c_void_p] * 3,
              ctypes.c_int64, *[ctypes.c_int] * 4, ctypes.c_float, ctypes.c_int)


def _kernel():
    return build.function("paged_attention", "paged_attention", _SIGNATURE)


def supports(q: torch.Tensor, k_cache: torch.Tensor) -> bool:
    """Whether `paged_attention` can run these tensors (else use the torch path)."""
    return (q.device.type == "cpu" and q.dtype in _DTYPE_CODES and k_cache.dtype == q.dtype
            and k_cache.is_contiguous() and q.shape[-1] <= MAX_HEAD_DIM
            and k_cache.shape[1] <= MAX_BLOCK_SIZE and q.shape[-2] % k_cache.shape[2] == 0
            and _kernel() is not None)


def paged_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                    block_tables: torch.Tensor, cu_seqlens_q: torch.Tensor,
                    context_lens: torch.Tensor, scale: float) -> torch.Tensor:
    """The contract of chip's `paged_attention` op (see chip/ops/attention.py); check `supports`
    first. Uses torch's intra-op thread count."""
    q = q.contiguous()
    tables = block_tables.to(torch.int64).contiguous()
    cu = cu_seqlens_q.to(torch.int64).contiguous()
    lens = context_lens.to(torch.int64).contiguous()
    out = torch.empty_like(q)
    if q.shape[0] == 0:
        return out
    num_heads, head_dim = q.shape[1], q.shape[2]
    status = _kernel()(_DTYPE_CODES[q.dtype], q.data_ptr(), k_cache.data_ptr(), v_cache.data_ptr(),
                       tables.data_ptr(), tables.shape[1], cu.data_ptr(), lens.data_ptr(),
                       out.data_ptr(), lens.shape[0], num_heads, k_cache.shape[2], head_dim,
                       k_cache.shape[1], scale, torch.get_num_threads())
    if status != 0:
        raise ValueError(f"paged_attention: unsupported shapes q {tuple(q.shape)}, "
                         f"cache {tuple(k_cache.shape)}")
    return out
