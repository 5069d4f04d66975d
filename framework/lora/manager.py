"""Which adapter sits in which slot, who is using it, and each step's per-token slot index.

The engine calls, in order: `prepare` when a request arrives (reads the adapter from disk into a
host-memory cache, or raises ValueError; safe off the engine thread), `acquire` before the
request joins the scheduler (puts the adapter in a slot, evicting the least recently used one no
request holds; False when every slot is held, and the request waits), `release` when it ends,
and `batch` for each step's forward pass. A slot's contents stay after release, so a returning
adapter costs nothing until its slot is needed.

It knows nothing about queues or requests beyond their ids and adapter ids.
"""
from __future__ import annotations

import threading
from collections import OrderedDict

import torch
from torch import nn

from chip.ops.lora import lora_row_scales
from framework.layers.lora import LoRABatch, LoRASlots, attach_lora_slots
from framework.lora.adapter import LoRAWeights, load_lora_adapter
from shared.lora_request import LoRARequest

# Steps of fewer tokens compute the adapters in float32 (bf16 models): measured on the 2-core box,
# one thread, 576->1536 with one rank-16 adapter: 12 vs 41 us at 1 row, 37 vs 46 at 16, but
# 114 vs 67 at 64 (benchmarks/lora.py prints the op's timings).
FLOAT32_BELOW_TOKENS = 32

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class LoRAManager:
    def __init__(self, max_loras: int, max_rank: int):
        self.max_loras, self.max_rank = max_loras, max_rank
        self.slot_adapter: list[int | None] = [None] * max_loras  # lora_int_id in each slot
        self.scalings = torch.zeros(max_loras)  # alpha / r of the adapter in each slot
        self._slot_of: OrderedDict[int, int] = OrderedDict()  # loaded ids, least recent first
        self._holders: dict[str, int] = {}  # request id -> the lora_int_id it holds a slot for
        self._known: dict[int, LoRARequest] = {}  # lora_int_id -> the request that named it
        self._host: dict[int, LoRAWeights] = {}  # weights read from disk, by lora_int_id
        self._lock = threading.Lock()  # `prepare` runs on request threads
        self._layers: dict[str, LoRASlots] = {}
        self._dtype = torch.float32

    def attach(self, model: nn.Module) -> None:
        """Give `model`'s target layers their slots and refill them with the loaded adapters
        (at engine build, and after a model swap)."""
        self._layers = attach_lora_slots(model, LORA_TARGETS, self.max_loras, self.max_rank)
        self._dtype = next(model.parameters()).dtype
        for lora_id, slot in self._slot_of.items():
            self._fill(slot, self._host[lora_id])

    # ---- adapters
    def prepare(self, request: LoRARequest) -> None:
        """Read and check the adapter (cached by id); ValueError when it cannot be served."""
        with self._lock:
            known = self._known.get(request.lora_int_id)
            if known is not None and (known.lora_name, known.lora_path) != (
                    request.lora_name, request.lora_path):
                raise ValueError(f"lora_int_id {request.lora_int_id} is already "
                                 f"{known.lora_name!r} at {known.lora_path}")
            if request.lora_int_id in self._host:
                return
        weights = load_lora_adapter(request.lora_path)
        self._check(weights, request)
        with self._lock:
            self._host.setdefault(request.lora_int_id, weights)
            self._known.setdefault(request.lora_int_id, request)

    def remove(self, lora_int_id: int) -> bool:
        """Forget an adapter (slot and host copy); False while a request still holds it."""
        if lora_int_id in self._holders.values():
            return False
        slot = self._slot_of.pop(lora_int_id, None)
        if slot is not None:
            self.slot_adapter[slot] = None
        with self._lock:
            self._host.pop(lora_int_id, None)
            self._known.pop(lora_int_id, None)
        return True

    @property
    def known_ids(self) -> set[int]:
        """Adapter ids prepared (read from disk), in a slot or not."""
        with self._lock:
            return set(self._host)

    @property
    def loaded_ids(self) -> list[int]:
        """Adapter ids in slots now, least recently used first."""
        return list(self._slot_of)

    # ---- requests
    def acquire(self, request_id: str, lora_int_id: int) -> bool:
        """Hold a slot with the (prepared) adapter for this request; False when none is free."""
        slot = self._slot_of.get(lora_int_id)
        if slot is None:
            slot = self._free_slot()
            if slot is None:
                return False
            self._fill(slot, self._host[lora_int_id])
            self.slot_adapter[slot] = lora_int_id
            self.scalings[slot] = self._host[lora_int_id].scaling
        self._slot_of[lora_int_id] = slot
        self._slot_of.move_to_end(lora_int_id)
        self._holders[request_id] = lora_int_id
        return True

    def release(self, request_id: str) -> None:
        """The request ended; its adapter stays in its slot until evicted."""
        self._holders.pop(request_id, None)

    def batch(self, lora_ids: list[int], num_tokens: list[int]) -> LoRABatch | None:
        """The step's per-token slots: sequence i (adapter lora_ids[i], 0 = base) computes
        num_tokens[i] tokens, laid out back to back. None when no token uses an adapter."""
        slots = [self._slot_of[i] if i else -1 for i in lora_ids]
        num_slots = max(slots) + 1
        if num_slots == 0:
            return None
        device = next(iter(self._layers.values())).lora_a.device
        indices = torch.repeat_interleave(torch.tensor(slots), torch.tensor(num_tokens))
        scalings = self.scalings[:num_slots]
        dtype = torch.float32 if len(indices) < FLOAT32_BELOW_TOKENS else self._dtype
        row_scales = lora_row_scales(indices, scalings, self.max_rank, dtype)
        return LoRABatch(indices.to(device), scalings.to(device), row_scales.to(device), num_slots)

    # ---- internals
    def _free_slot(self) -> int | None:
        if None in self.slot_adapter:
            return self.slot_adapter.index(None)
        held = set(self._holders.values())
        for lora_id, slot in self._slot_of.items():  # least recently used first
            if lora_id not in held:
                del self._slot_of[lora_id]
                self.slot_adapter[slot] = None
                return slot
        return None

    def _fill(self, slot: int, weights: LoRAWeights) -> None:
        for name, layer in self._layers.items():
            pair = weights.layers.get(name)
            if pair is None:
                layer.clear(slot)  # an adapter that leaves this layer alone
            else:
                layer.load(slot, pair[0].to(layer.lora_a.dtype), pair[1].to(layer.lora_b.dtype))

    def _check(self, weights: LoRAWeights, request: LoRARequest) -> None:
        if weights.rank > self.max_rank:
            raise ValueError(f"adapter {request.lora_name!r} has rank {weights.rank}; this engine "
                             f"serves up to max_lora_rank={self.max_rank}")
        for name, (lora_a, lora_b) in weights.layers.items():
            layer = self._layers.get(name)
            if layer is None:
                raise ValueError(f"adapter {request.lora_name!r} adapts {name!r}, which is not a "
                                 f"served layer (LoRA serves {', '.join(LORA_TARGETS)})")
            if lora_a.shape[1] != layer.in_features or lora_b.shape[0] != layer.out_features:
                raise ValueError(f"adapter {request.lora_name!r}: {name} is {lora_a.shape[1]}->"
                                 f"{lora_b.shape[0]}, the model's layer is "
                                 f"{layer.in_features}->{layer.out_features}")
