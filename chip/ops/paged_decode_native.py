"""Decode attention over the paged KV cache by the C kernel in chip/native/paged_decode.c.

It reads each sequence's blocks in place, so unlike the torch path it copies no keys or values,
pads nothing to the batch's longest context and spends no FLOPs on GQA layout tricks. Measured on
SmolLM2-135M shapes (64 sequences, contexts 64-640, one core): see benchmarks/chip_ops.py.
"""
from __future__ import annotations

import ctypes

import torch

from chip.native.build import load

_DTYPE_CODES = {torch.bfloat16: 0, torch.float32: 1}


def _kernel():
    library = load("paged_decode")
    if library is None:
        return None
    fn = library.paged_decode_attention
    if fn.argtypes is None:  # first call: declare the signature once
        fn.restype = ctypes.c_int
        fn.argtypes = [ctypes.c_int, *[ctypes.c_void_p] * 4, ctypes.c_int64, ctypes.c_void_p,
                       ctypes.c_void_p, ctypes.c_int64, *[ctypes.c_int] * 4, ctypes.c_float,
                       ctypes.c_int]
    return fn


def supports(q: torch.Tensor, k_cache: torch.Tensor) -> bool:
    """Whether `paged_decode` can run these tensors (else use the torch path)."""
    return (q.device.type == "cpu" and q.dtype in _DTYPE_CODES and k_cache.dtype == q.dtype
            and k_cache.is_contiguous() and _kernel() is not None)


def paged_decode(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                 block_tables: torch.Tensor, context_lens: torch.Tensor, scale: float) -> torch.Tensor:
    """q (B, Hq, D), one query per sequence at its last position; caches (num_blocks, block_size,
    Hk, D); block_tables (B, width); context_lens (B,). Returns (B, Hq, D). Check `supports` first."""
    q = q.contiguous()
    tables = block_tables.to(torch.int64).contiguous()
    lens = context_lens.to(torch.int64).contiguous()
    out = torch.empty_like(q)
    num_seqs, num_heads, head_dim = q.shape
    status = _kernel()(_DTYPE_CODES[q.dtype], q.data_ptr(), k_cache.data_ptr(), v_cache.data_ptr(),
                       tables.data_ptr(), tables.shape[1], lens.data_ptr(), out.data_ptr(), num_seqs,
                       num_heads, k_cache.shape[2], head_dim, k_cache.shape[1], scale,
                       torch.get_num_threads())
    if status != 0:
        raise ValueError(f"paged_decode: unsupported shapes q {tuple(q.shape)}, cache {tuple(k_cache.shape)}")
    return out
