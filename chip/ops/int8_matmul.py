"""Weight-only int8 matmul: int8 weights with one float scale per output channel.

    w ~= w_int8 * scales[:, None],  scales = max|w[n, :]| / 127   (symmetric, per output row)
    y  = x @ w.T = (x @ w_int8.T) * scales

Halves a bf16 weight's bytes (quarters float32's), which is what bounds decode speed. The error per
weight is at most scales[n] / 2, so |y - x @ w.T| <= sum_k |x_k| * scales[n] / 2 per output.
"""
from __future__ import annotations

import torch

from chip.dispatch import register
from chip.ops import int8_matmul_native


def quantize_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """weight (N, K) float -> (w_int8 (N, K) int8, scales (N,) float32), symmetric per row."""
    if weight.dim() != 2 or not weight.is_floating_point():
        raise ValueError(f"expected a 2-D float weight, got {tuple(weight.shape)} {weight.dtype}")
    w = weight.float()
    # An all-zero row gets scale 1 so dequantization stays exact (0 * 1) and nothing divides by 0.
    scales = w.abs().amax(dim=1) / 127.0
    scales = torch.where(scales > 0, scales, torch.ones_like(scales))
    w_int8 = torch.round(w / scales[:, None]).clamp_(-127, 127).to(torch.int8)
    return w_int8, scales


def dequantize_int8(w_int8: torch.Tensor, scales: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return (w_int8.float() * scales[:, None]).to(dtype)


@register("int8_matmul", "reference")
def int8_matmul(x: torch.Tensor, w_int8: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """x (..., K) float, w_int8 (N, K), scales (N,) -> (..., N) in x's dtype."""
    if w_int8.dtype != torch.int8 or x.shape[-1] != w_int8.shape[1] or scales.shape != w_int8.shape[:1]:
        raise ValueError(f"int8_matmul shapes: x {tuple(x.shape)}, w {tuple(w_int8.shape)} "
                         f"{w_int8.dtype}, scales {tuple(scales.shape)}")
    y = x @ w_int8.to(x.dtype).t()  # int8 values are exact in bf16 and float32
    return (y * scales.to(x.dtype)).to(x.dtype)


# torch's packed int8 kernel beats dequantize-then-GEMM on CPU for decode-sized batches only
# (measured: 20x at 1 row, 2.4x at 32, slower from ~100 rows), for bf16 activations only (float32
# is slower at 16 rows), and it crashes the process for K not a multiple of 16: stay well inside.
PACKED_MAX_ROWS = 64
PACKED_K_MULTIPLE = 64


@register("int8_matmul", "cpu")
def int8_matmul_cpu(x: torch.Tensor, w_int8: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Same contract as `int8_matmul`. Up to 8 rows (bf16 or float32): the C kernel of
    int8_matmul_native; larger bf16 decode batches: torch's packed int8 CPU kernel."""
    if torch.is_grad_enabled() and x.requires_grad:  # neither fast path has a backward
        return int8_matmul(x, w_int8, scales)
    if int8_matmul_native.supports(x, w_int8, scales):
        y = int8_matmul_native.int8_gemv(x, w_int8, scales)
        if y is not None:
            return y
    return int8_matmul_packed(x, w_int8, scales)


def int8_matmul_packed(x: torch.Tensor, w_int8: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Same contract; torch's packed int8 kernel where it is safe and pays, else the reference."""
    in_features = x.shape[-1]
    num_rows = x.numel() // max(in_features, 1)
    usable = (not (x.requires_grad and torch.is_grad_enabled())  # the packed kernel has no backward
              and x.dtype == torch.bfloat16 and in_features % PACKED_K_MULTIPLE == 0
              and 0 < num_rows <= PACKED_MAX_ROWS and w_int8.dtype == torch.int8
              and w_int8.dim() == 2 and w_int8.shape[1] == in_features
              and scales.shape == w_int8.shape[:1] and w_int8.is_contiguous())
    if not usable:
        return int8_matmul(x, w_int8, scales)
    x2 = x.reshape(num_rows, in_features).contiguous()  # (M, K)
    y = torch._weight_int8pack_mm(x2, w_int8, scales.to(torch.bfloat16))  # (M, N)
    return y.view(*x.shape[:-1], w_int8.shape[0])
