"""Weight-only int8 matmul for decode batches by the C kernel in chip/native/int8_gemv.c.

Each int8 weight row is read once for all rows of x and widened in registers, so a decode step
reads half a bf16 weight's bytes. torch's packed int8 kernel (`_weight_int8pack_mm`) lost to
prepacked bf16 oneDNN from 4-8 rows on, which left int8 decode slower than bf16. At SmolLM2-135M
shapes, 1 thread, this kernel runs 1.8-3.4x prepacked bf16 at 1-8 rows (benchmarks/int8_gemv_ab.py
has the table); batch-1 decode through `LLM` 1.50-1.65x bf16 (benchmarks/int8_decode_ab.py). bf16 x is
rounded per row to 16-bit fixed point (the error bound is in chip/native/int8_gemv.c).
"""
from __future__ import annotations

import ctypes
import functools

import torch

from chip.native import build

_DTYPE_CODES = {torch.bfloat16: 0, torch.float32: 1}
MAX_ROWS = 8  # the kernel's limit (chip/native/int8_gemv.c MAX_ROWS; bf16 wins at 16)

_SIGNATURE = (ctypes.c_int, ctypes.c_int, *[ctypes.c_void_p] * 4, *[ctypes.c_int64] * 3, ctypes.c_int)


def _kernel():
    return build.function("int8_gemv", "int8_gemv_variant", _SIGNATURE)


@functools.cache
def _dtype_supported(dtype: torch.dtype) -> bool:
    supported = build.function("int8_gemv", "int8_gemv_supported", (ctypes.c_int,))
    return supported is not None and bool(supported(_DTYPE_CODES[dtype]))


def supports(x: torch.Tensor, w_int8: torch.Tensor, scales: torch.Tensor) -> bool:
    """Whether `int8_gemv` takes these tensors (else use another path)."""
    in_features = x.shape[-1] if x.dim() else 0
    num_rows = x.numel() // max(in_features, 1)
    return (x.device.type == "cpu" and x.dtype in _DTYPE_CODES and 0 < num_rows <= MAX_ROWS
            and w_int8.dtype == torch.int8 and w_int8.dim() == 2 and w_int8.is_contiguous()
            and w_int8.shape[1] == in_features and w_int8.device.type == "cpu"
            and scales.dtype == torch.float32 and scales.is_contiguous()
            and scales.shape == w_int8.shape[:1] and _dtype_supported(x.dtype))


def int8_gemv(x: torch.Tensor, w_int8: torch.Tensor, scales: torch.Tensor,
              variant: int = 0) -> torch.Tensor | None:
    """x (..., K) with at most MAX_ROWS rows, w_int8 (N, K), scales (N,) float32 -> (..., N) in
    x's dtype, or None when bf16 x holds an inf or a NaN (take another path); check `supports`
    first. Uses torch's intra-op thread count. `variant` 1: bf16 by vdpbf16ps (benchmarks only)."""
    num_rows, in_features = x.numel() // x.shape[-1], x.shape[-1]
    x2 = x.reshape(num_rows, in_features).contiguous()  # (M, K)
    out = torch.empty(num_rows, w_int8.shape[0], dtype=x.dtype)  # (M, N)
    status = _kernel()(variant, _DTYPE_CODES[x.dtype], x2.data_ptr(), w_int8.data_ptr(),
                       scales.data_ptr(), out.data_ptr(), num_rows, w_int8.shape[0], in_features,
                       torch.get_num_threads())
    if status == 1:
        return None
    if status != 0:
        raise ValueError(f"int8_gemv: unsupported x {tuple(x.shape)} {x.dtype}, w {tuple(w_int8.shape)}")
    return out.view(*x.shape[:-1], w_int8.shape[0])
