"""Linear y = x W^T (+ b) for inference, with a prepacked-weight CPU fast path.

torch's plain bf16 F.linear on CPU is slow at decode sizes (1-64 rows): measured on the 2-core
AMD EPYC box (avx512_bf16), one thread, SmolLM2-135M shapes, oneDNN with a weight reordered once
into its blocked layout runs 1.8x faster at 1 row (576x1536: 59 -> 33 us; tied 49152x576 head:
3.3 -> 1.5 ms), 1.5x at 16 rows and ~1.1x at 64 rows, with bit-identical results. float32 gains
nothing, so only bf16 is packed. The packed copy has no autograd: training keeps F.linear.

Usage: `packed = pack_linear_weight(w)` once (None where packing does not pay or is unavailable),
then `dispatch("linear", device)(x, w, bias, packed)`; both backends accept packed=None.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from chip.dispatch import register
from chip.ops import bf16_gemv_native


def packing_supported(weight: torch.Tensor) -> bool:
    """True when `pack_linear_weight` would return a packed weight for `weight`."""
    return (weight.device.type == "cpu" and weight.dtype == torch.bfloat16 and weight.dim() == 2
            and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def pack_linear_weight(weight: torch.Tensor) -> torch.Tensor | None:
    """weight (N, K) -> an opaque oneDNN-layout copy for `linear_cpu`, or None where unsupported."""
    if not packing_supported(weight):
        return None
    with torch.no_grad():
        return torch.ops.mkldnn._reorder_linear_weight(weight.detach().contiguous())


@register("linear", "reference")
def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
           packed: torch.Tensor | None = None) -> torch.Tensor:
    """x (..., K), weight (N, K), bias (N,) or None -> (..., N). `packed` is ignored here."""
    return F.linear(x, weight, bias)


@register("linear", "cpu")
def linear_cpu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
               packed: torch.Tensor | None = None) -> torch.Tensor:
    """Same contract as `linear`; for bf16 inputs that need no gradient: 1-8 rows by the C GEMV of
    bf16_gemv_native where the CPU has AVX512_BF16, else the packed weight."""
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad
                                              or (bias is not None and bias.requires_grad))
    if not needs_grad and bf16_gemv_native.supports(x, weight, bias):
        return bf16_gemv_native.bf16_gemv(x, weight, bias)
    if (packed is None or needs_grad or x.shape[-1] != weight.shape[1]
            or not packed_linear_accepts(x, bias)):
        return F.linear(x, weight, bias)
    return linear_packed(x, packed, bias)


def packed_linear_accepts(x: torch.Tensor, bias: torch.Tensor | None) -> bool:
    """Whether `linear_packed` can take this input (a bf16 CPU tensor with rows, bias bf16 or None)."""
    return (x.dtype == torch.bfloat16 and x.device.type == "cpu" and x.numel() > 0
            and (bias is None or bias.dtype == torch.bfloat16))


def linear_packed(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x (..., K) times a weight known only by its packed copy (e.g. q/k/v packed as one); for
    inference only, on inputs `packed_linear_accepts`."""
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")
