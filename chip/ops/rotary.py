"""Rotary position embedding in the Hugging Face "rotate halves" convention, with Llama-3 scaling."""
from __future__ import annotations

import ctypes
import math

import torch

from chip.dispatch import register
from chip.native import build


def rope_inv_freq(head_dim: int, theta: float, scaling: dict | None = None) -> torch.Tensor:
    """(head_dim/2,) inverse frequencies, with rope scaling applied (llama3, linear) when given."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    if not scaling:
        return inv_freq.float()
    kind = scaling.get("rope_type") or scaling.get("type")
    if kind in (None, "default"):
        return inv_freq.float()
    if kind == "linear":
        return (inv_freq / float(scaling["factor"])).float()
    if kind == "llama3":
        return _llama3_scale(inv_freq, scaling).float()
    raise ValueError(f"unsupported rope_scaling type {kind!r}")


def _llama3_scale(inv_freq: torch.Tensor, scaling: dict) -> torch.Tensor:
    # Long wavelengths are divided by `factor`, short ones kept, the band between interpolated.
    factor = float(scaling["factor"])
    low_freq_factor = float(scaling.get("low_freq_factor", 1.0))
    high_freq_factor = float(scaling.get("high_freq_factor", 4.0))
    old_context = float(scaling.get("original_max_position_embeddings", 8192))
    low_freq_wavelen = old_context / low_freq_factor
    high_freq_wavelen = old_context / high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_context / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    is_medium = (wavelen >= high_freq_wavelen) & (wavelen <= low_freq_wavelen)
    return torch.where(is_medium, smoothed, scaled)


def rope_cos_sin(head_dim: int, max_positions: int, theta: float,
                 scaling: dict | None = None) -> torch.Tensor:
    """(max_positions, head_dim) float32 table: [cos | sin] halves, each (max_positions, head_dim/2)."""
    inv_freq = rope_inv_freq(head_dim, theta, scaling)
    freqs = torch.outer(torch.arange(max_positions, dtype=torch.float32), inv_freq)
    return torch.cat([freqs.cos(), freqs.sin()], dim=-1)


@register("rotary", "reference")
def apply_rotary(q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor,
                 cos_sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """q (T, Hq, D), k (T, Hk, D), positions (T,) -> rotated (q, k), same dtypes."""
    cos, sin = cos_sin[positions].chunk(2, dim=-1)  # (T, D/2) each
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # broadcast over heads
    return _rotate(q, cos, sin), _rotate(k, cos, sin)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.float().chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(x.dtype)


_DTYPE_CODES = {torch.bfloat16: 0, torch.float32: 1}


@register("rotary", "cpu")
def apply_rotary_cpu(q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor,
                     cos_sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract and bit-identical results; one C call (chip/native/rotary.c) for q and k
    instead of about twenty small torch ops, which dominate at decode sizes. Reads q and k where
    they lie (column slices of the q/k/v projection) and falls back to the reference under
    autograd or for layouts and dtypes the kernel does not take."""
    kernel = _rotary_kernel()
    if (kernel is None or q.dtype not in _DTYPE_CODES or k.dtype != q.dtype
            or cos_sin.dtype not in _DTYPE_CODES or not cos_sin.is_contiguous()
            or not _rows_of_contiguous_heads(q) or not _rows_of_contiguous_heads(k)
            or (torch.is_grad_enabled() and (q.requires_grad or k.requires_grad))):
        return apply_rotary(q, k, positions, cos_sin)
    positions = positions.to(torch.int64).contiguous()
    q_out, k_out = torch.empty(q.shape, dtype=q.dtype), torch.empty(k.shape, dtype=k.dtype)
    status = kernel(_DTYPE_CODES[q.dtype], q.data_ptr(), q.stride(0), k.data_ptr(), k.stride(0),
                    positions.data_ptr(), cos_sin.data_ptr(), _DTYPE_CODES[cos_sin.dtype],
                    q.shape[0], q.shape[1], k.shape[1], q.shape[2], q_out.data_ptr(), k_out.data_ptr())
    if status != 0:
        return apply_rotary(q, k, positions, cos_sin)
    return q_out, k_out


def _rows_of_contiguous_heads(x: torch.Tensor) -> bool:
    return (x.device.type == "cpu" and x.dim() == 3 and x.stride(2) == 1
            and x.stride(1) == x.shape[2] and x.shape[0] > 0)


_SIGNATURE = (ctypes.c_int, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64,
              ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int64, ctypes.c_int,
              ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)


def _rotary_kernel():
    return build.function("rotary", "rotary", _SIGNATURE)
