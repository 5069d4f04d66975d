"""RMSNorm (+ fused residual add) as a Triton kernel: one program per row.

The torch reference is `chip.ops.norm.rms_norm`; this file holds the kernel and its launch wrapper.
Values are upcast to float32 inside the kernel (the Triton interpreter cannot do bf16 arithmetic
directly, and the GPU wants float32 accumulation anyway).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from chip.dispatch import register
from chip.ops.norm import rms_norm


@triton.jit
def _rms_norm_kernel(x_ptr, residual_ptr, weight_ptr, y_ptr, residual_out_ptr,
                     num_cols,
                     stride_x_row, stride_r_row, stride_y_row, stride_ro_row,
                     eps,
                     HAS_RESIDUAL: tl.constexpr, BLOCK_N: tl.constexpr):
    row = tl.program_id(0)
    offs_n = tl.arange(0, BLOCK_N)
    mask = offs_n < num_cols
    x = tl.load(x_ptr + row * stride_x_row + offs_n, mask=mask, other=0.0).to(tl.float32)
    if HAS_RESIDUAL:
        r = tl.load(residual_ptr + row * stride_r_row + offs_n, mask=mask, other=0.0).to(tl.float32)
        # Round the sum to the storage dtype first, as the reference's `x + residual` does.
        x = (x + r).to(residual_out_ptr.dtype.element_ty)
        tl.store(residual_out_ptr + row * stride_ro_row + offs_n, x, mask=mask)
        x = x.to(tl.float32)
    # ---- normalize: y = x * rsqrt(mean(x^2) + eps) * w
    mean_sq = tl.sum(x * x, axis=0) / num_cols
    w = tl.load(weight_ptr + offs_n, mask=mask, other=0.0).to(tl.float32)
    y = x * tl.math.rsqrt(mean_sq + eps) * w
    tl.store(y_ptr + row * stride_y_row + offs_n, y.to(y_ptr.dtype.element_ty), mask=mask)


def _needs_grad(*tensors: torch.Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _launch_config(num_cols: int, element_size: int) -> dict:
    # One row per program held in registers (as in the Triton layer-norm tutorial): the row must fit
    # 64 KB, and wider rows get more warps so each thread holds a bounded slice.
    block_n = triton.next_power_of_2(num_cols)
    assert block_n * element_size <= 65536, f"hidden size {num_cols} too wide for one-row programs"
    return {"BLOCK_N": block_n, "num_warps": min(max(block_n // 256, 1), 8)}


@register("rms_norm", "cuda")
def rms_norm_triton(x: torch.Tensor, weight: torch.Tensor, eps: float,
                    residual: torch.Tensor | None = None):
    """Same contract as the reference: y, or (y, x + residual) when `residual` is given.

    The kernel has no backward pass, so under autograd (training) this is the torch reference."""
    if _needs_grad(x, weight, residual):
        return rms_norm(x, weight, eps, residual)
    num_cols = x.shape[-1]
    assert weight.shape == (num_cols,), f"weight {tuple(weight.shape)} vs hidden {num_cols}"
    assert x.stride(-1) == 1 and weight.is_contiguous(), "last dim must be contiguous"
    x2 = x.reshape(-1, num_cols)  # (M, N); a view when rows are evenly strided
    y = torch.empty(x2.shape, dtype=x.dtype, device=x.device)
    if residual is not None:
        assert residual.shape == x.shape, f"residual {tuple(residual.shape)} vs x {tuple(x.shape)}"
        r2 = residual.reshape(-1, num_cols)
        assert r2.stride(-1) == 1, "residual's last dim must be contiguous"
        residual_out = torch.empty_like(x2)
    else:
        r2, residual_out = x2, y  # unused when HAS_RESIDUAL is False
    if x2.shape[0] == 0:
        return y.view(x.shape) if residual is None else (y.view(x.shape), residual_out.view(x.shape))
    _rms_norm_kernel[(x2.shape[0],)](
        x2, r2, weight, y, residual_out,
        num_cols,
        x2.stride(0), r2.stride(0), y.stride(0), residual_out.stride(0),
        eps,
        HAS_RESIDUAL=residual is not None, **_launch_config(num_cols, x.element_size()))
    y = y.view(x.shape)
    return y if residual is None else (y, residual_out.view(x.shape))
