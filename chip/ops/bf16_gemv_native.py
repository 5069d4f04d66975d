"""bf16 linear for decode batches (1-8 rows) by the C kernel `bf16_gemv` in chip/native/int8_gemv.c.

Each bf16 weight row is read once for all rows of x and multiplied with AVX512_BF16 `vdpbf16ps`
(exact products, fp32 sums, one rounding per output), on the int8 kernel's thread pool. oneDNN's
prepacked bf16 linear is the path from 9 rows on and where the CPU lacks AVX512_BF16.
`FLYWHEEL_BF16_GEMV=0` (or `ENABLED = False`) turns it off: benchmarks/bf16_gemv_ab.py compares.
"""
from __future__ import annotations

import ctypes
import functools
import os

import torch

from chip.native import build

MAX_ROWS = 8  # chip/native/int8_gemv.c MAX_ROWS
ENABLED = os.environ.get("FLYWHEEL_BF16_GEMV", "1") != "0"

_SIGNATURE = (*[ctypes.c_void_p] * 4, *[ctypes.c_int64] * 4, ctypes.c_int)


def _kernel():
    return build.function("int8_gemv", "bf16_gemv", _SIGNATURE)


@functools.cache
def _cpu_supported() -> bool:
    supported = build.function("int8_gemv", "bf16_gemv_supported", ())
    return supported is not None and bool(supported())


def supports(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
    """Whether `bf16_gemv` takes these tensors (else use another path)."""
    if not ENABLED or x.dtype != torch.bfloat16 or x.device.type != "cpu" or x.dim() == 0:
        return False
    num_rows = x.numel() // max(x.shape[-1], 1)
    return (0 < num_rows <= MAX_ROWS and weight_supported(weight, x.shape[-1])
            and (bias is None or (bias.dtype == torch.bfloat16 and bias.is_contiguous()
                                  and bias.shape == weight.shape[:1] and bias.device.type == "cpu"))
            and _cpu_supported())


def weight_supported(weight: torch.Tensor, in_features: int) -> bool:
    return (weight.dtype == torch.bfloat16 and weight.dim() == 2 and weight.is_contiguous()
            and weight.shape[1] == in_features and weight.device.type == "cpu")


def bf16_gemv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
              out: torch.Tensor | None = None) -> torch.Tensor:
    """x (..., K) with 1..MAX_ROWS rows, weight (N, K), bias (N,) or None -> (..., N) bf16; check
    `supports` first. `out`: an (M, N) view whose rows may be strided (a slice of a wider output),
    written in place. Uses torch's intra-op thread count."""
    num_rows, in_features = x.numel() // x.shape[-1], x.shape[-1]
    x2 = x.reshape(num_rows, in_features).contiguous()  # (M, K)
    n = weight.shape[0]
    y = torch.empty(num_rows, n, dtype=torch.bfloat16) if out is None else out  # (M, N)
    if y.shape != (num_rows, n) or y.stride(1) != 1 or y.dtype != torch.bfloat16:
        raise ValueError(f"bf16_gemv: out {tuple(y.shape)} {y.stride()} for ({num_rows}, {n})")
    status = _kernel()(x2.data_ptr(), weight.data_ptr(), 0 if bias is None else bias.data_ptr(),
                       y.data_ptr(), num_rows, n, in_features, y.stride(0) if num_rows > 1 else n,
                       torch.get_num_threads())
    if status != 0:
        raise ValueError(f"bf16_gemv: unsupported x {tuple(x.shape)}, w {tuple(weight.shape)}")
    return y.view(*x.shape[:-1], n) if out is None else y
