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
from dataclasses import dataclass, field

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
    # row_scales widened for fused groups (LoRAGroup), by their total rank; filled lazily
    row_scales_by_rank: dict[int, torch.Tensor] = field(default_factory=dict)


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
                 dtype: torch.dtype, device: torch.device,
                 storage: tuple[torch.Tensor, ...] | None = None):
        """`storage`: (A, B, A32, B32) views into a `LoRAGroup`'s buffers, else its own."""
        super().__init__()
        self.in_features, self.out_features, self.max_rank = in_features, out_features, max_rank
        if storage is not None:
            self.lora_a, self.lora_b, self.lora_a32, self.lora_b32 = storage
            return
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
        assert (lora_a.shape == (rank, self.in_features)
                and lora_b.shape == (self.out_features, rank)), \
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


# Layers that read the same input and run as one fused matmul (`grouped_linear`): their adapters
# run as one add_lora call per step too (7 -> 4 calls per decoder layer).
GROUPS = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))


class LoRAGroup:
    """The slots of a fused group as one adapter of rank G*r: A stacked (n, G, r, in), B
    block-diagonal (n, G*r, sum of outs). Each member's `LoRASlots` is a view into these, so
    loading a member's slot fills the group's; the zero blocks cost (G-1)*r*out multiply-adds per
    token, little next to one call's overhead at rank 16."""

    def __init__(self, layers: list[Linear], max_loras: int, max_rank: int, dtype: torch.dtype,
                 device: torch.device):
        n, g, r = max_loras, len(layers), max_rank
        outs = [layer.out_features for layer in layers]
        self.layer_ids = tuple(id(layer) for layer in layers)
        self.rank = g * r
        wide = torch.float32
        a = torch.zeros(n, g, r, layers[0].in_features, dtype=dtype, device=device)
        b = torch.zeros(n, g * r, sum(outs), dtype=dtype, device=device)
        a32, b32 = (a, b) if dtype == wide else (a.to(wide), b.to(wide))
        self.lora_a, self.lora_b, self.lora_a32, self.lora_b32 = a, b, a32, b32
        self.members: list[LoRASlots] = []
        offset = 0
        for i, layer in enumerate(layers):
            rows, cols = slice(i * r, (i + 1) * r), slice(offset, offset + outs[i])
            views = (a[:, i], b[:, rows, cols], a32[:, i], b32[:, rows, cols])
            self.members.append(LoRASlots(layer.in_features, outs[i], n, r, dtype, device, views))
            offset += outs[i]

    def serves(self, layers: tuple[Linear, ...]) -> bool:
        return tuple(id(layer) for layer in layers) == self.layer_ids

    def add_to(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """y (T, sum of outs), the group's fused output, += every member's adapter products."""
        batch = _current.get()
        if batch is None or batch.num_slots == 0:
            return y
        m, size = batch.num_slots, self.lora_a.shape[-1]
        wide = batch.row_scales.dtype != self.lora_a.dtype
        lora_a, lora_b = (self.lora_a32, self.lora_b32) if wide else (self.lora_a, self.lora_b)
        row_scales = batch.row_scales_by_rank.get(self.rank)
        if row_scales is None:  # each slot's scaling over G*r columns, built once per step
            per_slot = batch.row_scales.view(-1, m, batch.row_scales.shape[1] // m)[:, :, :1]
            row_scales = per_slot.expand(-1, m, self.rank).reshape(-1, m * self.rank)
            batch.row_scales_by_rank[self.rank] = row_scales
        dispatch("add_lora", y.device.type)(
            y, x, batch.indices, lora_a[:m].reshape(m, self.rank, size),
            lora_b[:m].transpose(1, 2), batch.scalings[:m], row_scales)
        return y


def _hook(module: Linear, inputs: tuple[torch.Tensor], output: torch.Tensor) -> torch.Tensor:
    return module.lora.add_to(output, inputs[0])


def attach_lora_slots(model: nn.Module, targets: tuple[str, ...], max_loras: int,
                      max_rank: int) -> dict[str, LoRASlots]:
    """Give every `Linear` whose attribute name is in `targets` its slots; returns them by the
    layer's qualified name (`model.layers.0.self_attn.q_proj`)."""
    weight = next(model.parameters())
    _attach_groups(model, targets, max_loras, max_rank, weight)
    attached: dict[str, LoRASlots] = {}
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in targets and isinstance(module, Linear):
            if getattr(module, "lora", None) is None:
                module.lora = LoRASlots(module.in_features, module.out_features, max_loras,
                                        max_rank, weight.dtype, weight.device)
            if not module._forward_hooks:
                module.register_forward_hook(_hook)
            attached[name] = module.lora
    if not attached:
        raise ValueError(f"no Linear layer named any of {targets} to serve LoRA on")
    return attached


def _attach_groups(model: nn.Module, targets: tuple[str, ...], max_loras: int, max_rank: int,
                   weight: torch.Tensor) -> None:
    for parent in model.modules():
        for names in GROUPS:
            layers = [getattr(parent, name, None) for name in names]
            if (not set(names) <= set(targets) or not all(isinstance(x, Linear) for x in layers)
                    or any(getattr(x, "lora", None) is not None for x in layers)
                    or len({x.in_features for x in layers}) != 1):
                continue
            group = LoRAGroup(layers, max_loras, max_rank, weight.dtype, weight.device)
            for layer, slots in zip(layers, group.members):
                layer.lora, layer.lora_group = slots, group
