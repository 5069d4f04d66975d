"""LoRA slots on linear layers: stacked adapter weights, applied per token to a mixed batch.

`attach_lora_slots` gives each targeted `Linear` a `LoRASlots` (its `.lora`) and a forward hook
that adds chip's `add_lora` to its output; the fused q/k/v and gate/up matmul
(`grouped_linear`) adds it to each layer's column slice instead. The layers themselves are not
replaced, so parameter names, packing and fusion are unchanged, and a step with no adapter in it
costs one context-variable read per layer.

Which token uses which slot comes from the step's `LoRABatch`, set by the model runner around the
forward pass like the attention metadata. This module knows nothing about adapters on disk or
which adapter sits in which slot (that is `framework.lora`).
"""
from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from chip import dispatch
from framework.layers.linear import Linear


@dataclass(slots=True)
class LoRABatch:
    indices: torch.Tensor  # (T,) int64: each token's slot, -1 for the base model
    scalings: torch.Tensor  # (num_slots,) float32: alpha / rank of the adapter in each slot
    # (T, num_slots * max_rank): chip.ops.lora.lora_row_scales, built once per step in the dtype
    # the adapters are computed in (float32 for steps of a few tokens, see LoRASlots)
    row_scales: torch.Tensor
    num_slots: int  # slots up to the highest one this batch uses (only these are computed)


_current: contextvars.ContextVar[LoRABatch | None] = contextvars.ContextVar("lora_batch",
                                                                           default=None)


def get_lora_batch() -> LoRABatch | None:
    return _current.get()


@contextlib.contextmanager
def lora_batch(batch: LoRABatch | None) -> Iterator[None]:
    """Run the block's forward passes with `batch`'s per-token adapters (None: base only)."""
    token = _current.set(batch)
    try:
        yield
    finally:
        _current.reset(token)


class LoRASlots(nn.Module):
    """The adapters' A and B of one linear layer, `max_loras` slots of rank `max_rank`."""

    def __init__(self, in_features: int, out_features: int, max_loras: int, max_rank: int,
                 dtype: torch.dtype, device: torch.device):
        super().__init__()
        self.in_features, self.out_features, self.max_rank = in_features, out_features, max_rank
        # Not persistent: slot contents are runtime state, not part of the model's checkpoint.
        self.register_buffer("lora_a", torch.zeros(max_loras, max_rank, in_features, dtype=dtype,
                                                   device=device), persistent=False)
        # B stored (n, r, out) so the first m slots flatten to (m*r, out) for free (chip.ops.lora)
        self.register_buffer("lora_b", torch.zeros(max_loras, max_rank, out_features, dtype=dtype,
                                                   device=device), persistent=False)
        # float32 copies for steps of a few tokens, where float32 matmuls beat bf16 ones on CPU
        # (chip.ops.lora.add_lora_dense); the same tensors when the model is float32 already.
        wide = torch.float32
        self.lora_a32 = self.lora_a if dtype == wide else self.lora_a.to(wide)
        self.lora_b32 = self.lora_b if dtype == wide else self.lora_b.to(wide)

    def load(self, slot: int, lora_a: torch.Tensor, lora_b: torch.Tensor) -> None:
        """Put an adapter's A (r, in) and B (out, r) in `slot`; ranks below max_rank zero-pad."""
        rank = lora_a.shape[0]
        assert lora_a.shape == (rank, self.in_features) and lora_b.shape == (self.out_features, rank), \
            f"A {tuple(lora_a.shape)} / B {tuple(lora_b.shape)} do not fit a " \
            f"{self.in_features}->{self.out_features} layer"
        assert rank <= self.max_rank, f"rank {rank} exceeds the slots' {self.max_rank}"
        with torch.no_grad():
            self.clear(slot)
            for a, b in ((self.lora_a, self.lora_b), (self.lora_a32, self.lora_b32)):
                a[slot, :rank].copy_(lora_a)
                b[slot, :rank].copy_(lora_b.t())

    def clear(self, slot: int) -> None:
        with torch.no_grad():
            for slots in (self.lora_a, self.lora_b, self.lora_a32, self.lora_b32):
                slots[slot].zero_()

    def add_to(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """y (..., out) += this step's per-token adapter products of x (..., in); returns y."""
        batch = _current.get()
        if batch is None or batch.num_slots == 0:
            return y
        m = batch.num_slots
        wide = batch.row_scales.dtype != self.lora_a.dtype
        lora_a, lora_b = (self.lora_a32, self.lora_b32) if wide else (self.lora_a, self.lora_b)
        flat_y = y if y.dim() == 2 else y.view(-1, y.shape[-1])  # (T, out); may be a column slice
        dispatch("add_lora", y.device.type)(
            flat_y, x.reshape(-1, x.shape[-1]), batch.indices, lora_a[:m],
            lora_b[:m].transpose(1, 2), batch.scalings[:m], batch.row_scales)
        return y


def _hook(module: Linear, inputs: tuple[torch.Tensor], output: torch.Tensor) -> torch.Tensor:
    return module.lora.add_to(output, inputs[0])


def attach_lora_slots(model: nn.Module, targets: tuple[str, ...], max_loras: int,
                      max_rank: int) -> dict[str, LoRASlots]:
    """Give every `Linear` whose attribute name is in `targets` its slots; returns them by the
    layer's qualified name (`model.layers.0.self_attn.q_proj`)."""
    weight = next(model.parameters())
    attached: dict[str, LoRASlots] = {}
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in targets and isinstance(module, Linear):
            if getattr(module, "lora", None) is None:
                module.lora = LoRASlots(module.in_features, module.out_features, max_loras,
                                        max_rank, weight.dtype, weight.device)
                module.register_forward_hook(_hook)
            attached[name] = module.lora
    if not attached:
        raise ValueError(f"no Linear layer named any of {targets} to serve LoRA on")
    return attached
