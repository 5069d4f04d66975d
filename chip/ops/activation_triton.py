"""SiLU-and-mul (SwiGLU's gate) as a Triton kernel over a (rows, 2I) tensor [gate | up].

The torch reference is `chip.ops.activation.silu_and_mul`. Grid: (rows, column blocks).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from chip.dispatch import register
from chip.ops.activation import silu_and_mul


@triton.jit
def _silu_and_mul_kernel(x_ptr, out_ptr,
                         num_cols,
                         stride_x_row, stride_out_row,
                         BLOCK_N: tl.constexpr):
    row = tl.program_id(0)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask = offs_n < num_cols
    gate = tl.load(x_ptr + row * stride_x_row + offs_n, mask=mask, other=0.0).to(tl.float32)
    up = tl.load(x_ptr + row * stride_x_row + num_cols + offs_n, mask=mask, other=0.0).to(tl.float32)
    out = gate * tl.sigmoid(gate) * up
    tl.store(out_ptr + row * stride_out_row + offs_n, out.to(out_ptr.dtype.element_ty), mask=mask)


@register("silu_and_mul", "cuda")
def silu_and_mul_triton(x: torch.Tensor, block_n: int = 1024) -> torch.Tensor:
    """x (..., 2I) -> (..., I); the torch reference under autograd (the kernel has no backward)."""
    if x.requires_grad and torch.is_grad_enabled():
        return silu_and_mul(x)
    assert x.shape[-1] % 2 == 0, f"last dim must be even ([gate | up]), got {x.shape[-1]}"
    assert x.stride(-1) == 1, "last dim must be contiguous"
    num_cols = x.shape[-1] // 2
    x2 = x.reshape(-1, x.shape[-1])  # (M, 2I)
    out = torch.empty((x2.shape[0], num_cols), dtype=x.dtype, device=x.device)
    if out.numel() == 0:
        return out.view(*x.shape[:-1], num_cols)
    block_n = min(block_n, triton.next_power_of_2(num_cols))
    grid = (x2.shape[0], triton.cdiv(num_cols, block_n))
    _silu_and_mul_kernel[grid](x2, out, num_cols, x2.stride(0), out.stride(0), BLOCK_N=block_n)
    return out.view(*x.shape[:-1], num_cols)
