"""Linear layers. A plain y = x W^T (+ b); the tensor-parallel split is a transform applied later.

Inference (no gradient needed) goes through chip's `linear` op with a weight packed once for the
device's fast kernel (bf16 decode rows, 1-8: chip's C bf16 GEMV on the weight itself); the packed copy is rebuilt when the weight's storage, version or dtype
changes (load_state_dict, .to(), LoRA merge, an optimizer step), so it is never stale. Training
with autograd keeps plain F.linear. Parameter names are unchanged (checkpoints, LoRA rely on them).

`Linear.quantization = "int8"` (set by the engine from `EngineConfig.quantization`) makes inference
use a weight-only int8 copy (chip `int8_matmul`, per-output-channel scales), built the same lazy way.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from chip import dispatch
from chip.ops import bf16_gemv_native
from chip.ops.int8_matmul import quantize_int8
from chip.ops.linear import linear_packed, pack_linear_weight, packed_linear_accepts


class PackedWeightCache:
    """Holds `pack(weight)` (default: `pack_linear_weight`) for the weight it was built from; given
    several weights, the packed copy of their concatenation along the output dim."""

    def __init__(self, pack: Callable = pack_linear_weight) -> None:
        self._pack = pack
        self._key: tuple | None = None
        self._packed = None

    def get(self, *weights: torch.Tensor):
        if any(w.is_inference() for w in weights):
            # Inference tensors have no version counter, so an in-place change could not be seen.
            return None
        key = tuple((w.data_ptr(), w._version, w.dtype, tuple(w.shape), w.device) for w in weights)
        if key != self._key:
            self._key, self._packed = None, None  # free the stale copy before packing a new one
            with torch.no_grad():
                whole = weights[0] if len(weights) == 1 else torch.cat(weights)
                self._packed = self._pack(whole.detach())
            self._key = key
        return self._packed

    # The packed copy is derived data: copies and pickles start empty and repack on first use.
    def __deepcopy__(self, memo: dict) -> PackedWeightCache:
        return PackedWeightCache(self._pack)

    def __getstate__(self) -> dict:
        return {"pack": self._pack}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["pack"])


def inference_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                     cache: PackedWeightCache) -> torch.Tensor:
    """F.linear when autograd needs it, else chip's `linear` op with the cached packed weight."""
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad
                                    or (bias is not None and bias.requires_grad)):
        return F.linear(x, weight, bias)
    return dispatch("linear", x.device.type)(x, weight, bias, cache.get(weight))


class Linear(nn.Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = False):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        if not self.weight.is_meta:  # the loader builds on meta: there, init imports torch._dynamo
            nn.init.normal_(self.weight, std=0.02)
        self._packed = PackedWeightCache()
        self._int8 = PackedWeightCache(quantize_int8)
        self._int8_group = PackedWeightCache(quantize_int8)  # its group's, when it leads one
        self.quantization: str | None = None  # "int8": inference uses a weight-only int8 copy

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.quantization == "int8" and not torch.is_grad_enabled():
            w_int8, scales = self._int8.get(self.weight) or (None, None)
            if w_int8 is not None:
                y = dispatch("int8_matmul", x.device.type)(x, w_int8, scales)
                return y if self.bias is None else y + self.bias
        return inference_linear(x, self.weight, self.bias, self._packed)


def grouped_linear(x: torch.Tensor, layers: tuple[Linear, ...], cache: PackedWeightCache) -> torch.Tensor:
    """The outputs of `layers` (which all read `x`) concatenated along the last dim.

    For inference with packable weights it is one matmul against their packed concatenation
    (q/k/v or gate/up: one call instead of three or two, and no concatenation of the outputs);
    likewise with int8 weights, against the int8 copy of their concatenation; otherwise
    (autograd, float32, no packing) each layer runs on its own. The layers keep
    their own parameters, so checkpoint names and LoRA targets do not change.
    """
    if _fusable(x, layers) and _gemv_fusable(x, layers):
        return _add_lora(grouped_gemv(x, layers), x, layers)
    if _fusable(x, layers):
        packed = cache.get(*(layer.weight for layer in layers))
        if packed is not None:
            return _add_lora(linear_packed(x, packed, _group_bias(layers)), x, layers)
    if _int8_fusable(layers):
        # Per-row scales: the int8 copy of the concatenation is the concatenation of the copies.
        w_int8, scales = layers[0]._int8_group.get(*(layer.weight for layer in layers)) or (None, None)
        if w_int8 is not None:
            y = dispatch("int8_matmul", x.device.type)(x, w_int8, scales)
            bias = _group_bias(layers)
            return _add_lora(y if bias is None else y + bias, x, layers)
    return torch.cat([layer(x) for layer in layers], dim=-1)


def _gemv_fusable(x: torch.Tensor, layers: tuple[Linear, ...]) -> bool:
    return all(bf16_gemv_native.supports(x, layer.weight, layer.bias) for layer in layers)


def grouped_gemv(x: torch.Tensor, layers: tuple[Linear, ...]) -> torch.Tensor:
    """`grouped_linear` for decode rows (1-8, `_gemv_fusable`): each layer's own bf16 weight into
    its slice of one output, so no concatenated copy of the weights is kept and the outputs are not
    concatenated either. Without LoRA (the caller adds it)."""
    num_rows = x.numel() // x.shape[-1]
    out = torch.empty(num_rows, sum(layer.out_features for layer in layers), dtype=torch.bfloat16)
    offset = 0
    for layer in layers:
        bf16_gemv_native.bf16_gemv(x, layer.weight, layer.bias, out[:, offset:offset + layer.out_features])
        offset += layer.out_features
    return out.view(*x.shape[:-1], out.shape[-1])


def _group_bias(layers: tuple[Linear, ...]) -> torch.Tensor | None:
    return None if layers[0].bias is None else torch.cat([layer.bias for layer in layers])


def _add_lora(y: torch.Tensor, x: torch.Tensor, layers: tuple[Linear, ...]) -> torch.Tensor:
    # LoRA slots (framework.layers.lora) hang on the layers as `.lora`; the fused matmul skipped
    # their forward hooks, so the group adds all its adapters at once (or each layer its slice).
    group = getattr(layers[0], "lora_group", None)
    if group is not None and group.serves(layers):
        return group.add_to(y, x)
    offset = 0
    for layer in layers:
        slots = getattr(layer, "lora", None)
        if slots is not None:
            slots.add_to(y[..., offset:offset + layer.out_features], x)
        offset += layer.out_features
    return y


def _int8_fusable(layers: tuple[Linear, ...]) -> bool:
    # Plain int8 Linears at inference (their own forward's condition), all with a bias or none.
    return (not torch.is_grad_enabled()
            and all(type(layer) is Linear and layer.quantization == "int8" for layer in layers)
            and len({layer.bias is None for layer in layers}) == 1)


def _fusable(x: torch.Tensor, layers: tuple[Linear, ...]) -> bool:
    # Plain Linears (not LoRA-wrapped), no int8, no autograd, all with a bias or all without.
    if not all(type(layer) is Linear and layer.quantization is None for layer in layers):
        return False
    if len({layer.bias is None for layer in layers}) != 1:
        return False
    if torch.is_grad_enabled() and (x.requires_grad or any(layer.weight.requires_grad for layer in layers)):
        return False
    return packed_linear_accepts(x, layers[0].bias)
