"""Rotary embedding (HF "rotate halves" convention) as a Triton kernel: one program per token.

The torch reference is `chip.ops.rotary.apply_rotary`. Each program rotates all heads of one token,
reading cos/sin for that token's position once; q and k go through the same kernel in two launches.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from chip.dispatch import register
from chip.ops.rotary import apply_rotary


@triton.jit
def _rotary_kernel(x_ptr, out_ptr, positions_ptr, cos_sin_ptr,
                   num_heads, half_dim,
                   stride_x_tok, stride_x_head, stride_out_tok, stride_out_head, stride_cs_pos,
                   BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr):
    tok = tl.program_id(0)
    offs_h = tl.arange(0, BLOCK_H)
    offs_d = tl.arange(0, BLOCK_D)
    pos = tl.load(positions_ptr + tok)
    # ---- cos/sin for this position: row `pos` of the [cos | sin] table, (BLOCK_D,) each
    mask_d = offs_d < half_dim
    cos = tl.load(cos_sin_ptr + pos * stride_cs_pos + offs_d, mask=mask_d, other=0.0)
    sin = tl.load(cos_sin_ptr + pos * stride_cs_pos + half_dim + offs_d, mask=mask_d, other=0.0)
    # ---- rotate the (BLOCK_H, BLOCK_D) halves of every head
    mask = (offs_h[:, None] < num_heads) & mask_d[None, :]
    x1_ptrs = x_ptr + tok * stride_x_tok + offs_h[:, None] * stride_x_head + offs_d[None, :]
    x1 = tl.load(x1_ptrs, mask=mask, other=0.0).to(tl.float32)
    x2 = tl.load(x1_ptrs + half_dim, mask=mask, other=0.0).to(tl.float32)
    o1 = x1 * cos[None, :] - x2 * sin[None, :]
    o2 = x2 * cos[None, :] + x1 * sin[None, :]
    out_ptrs = out_ptr + tok * stride_out_tok + offs_h[:, None] * stride_out_head + offs_d[None, :]
    tl.store(out_ptrs, o1.to(out_ptr.dtype.element_ty), mask=mask)
    tl.store(out_ptrs + half_dim, o2.to(out_ptr.dtype.element_ty), mask=mask)


def _rotate(x: torch.Tensor, positions: torch.Tensor, cos_sin: torch.Tensor) -> torch.Tensor:
    num_tokens, num_heads, head_dim = x.shape
    assert x.stride(-1) == 1, "head dim must be contiguous"
    out = torch.empty((num_tokens, num_heads, head_dim), dtype=x.dtype, device=x.device)
    if num_tokens == 0:
        return out
    half_dim = head_dim // 2
    _rotary_kernel[(num_tokens,)](
        x, out, positions, cos_sin,
        num_heads, half_dim,
        x.stride(0), x.stride(1), out.stride(0), out.stride(1), cos_sin.stride(0),
        BLOCK_H=triton.next_power_of_2(num_heads), BLOCK_D=triton.next_power_of_2(half_dim))
    return out


@register("rotary", "cuda")
def apply_rotary_triton(q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor,
                        cos_sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """q (T, Hq, D), k (T, Hk, D), positions (T,), cos_sin (P, D) float32 -> rotated (q, k).

    The kernel has no backward pass, so under autograd (training) this is the torch reference."""
    if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad):
        return apply_rotary(q, k, positions, cos_sin)
    assert q.dim() == 3 and k.dim() == 3, f"q, k must be (T, H, D), got {q.shape} and {k.shape}"
    assert q.shape[0] == k.shape[0] == positions.shape[0], "q, k, positions disagree on T"
    assert q.shape[-1] == k.shape[-1] == cos_sin.shape[-1], "head dim disagrees with cos_sin"
    assert q.shape[-1] % 2 == 0, "head dim must be even"
    assert cos_sin.dtype == torch.float32 and cos_sin.stride(-1) == 1, "cos_sin: contiguous float32"
    return _rotate(q, positions, cos_sin), _rotate(k, positions, cos_sin)
