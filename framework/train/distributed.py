"""Data parallelism over torch.distributed (gloo on CPU): shard the batch, all-reduce gradients.

The trainer normalizes losses by global counts, so summing gradients across ranks gives exactly
the single-process gradient. With no process group the context is a one-rank no-op.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True, slots=True)
class DistContext:
    rank: int = 0
    world_size: int = 1

    @classmethod
    def from_process_group(cls) -> "DistContext":
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, items: list) -> list:
        """This rank's contiguous slice of a global micro-batch."""
        per_rank = -(-len(items) // self.world_size)
        return items[self.rank * per_rank:(self.rank + 1) * per_rank]

    def sum_scalar(self, value: float) -> float:
        if self.world_size == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(tensor)
        return float(tensor.item())

    def sum_gradients(self, model: nn.Module) -> None:
        if self.world_size == 1:
            return
        for param in model.parameters():
            if param.requires_grad:
                if param.grad is None:
                    param.grad = torch.zeros_like(param)
                dist.all_reduce(param.grad)

    def broadcast_parameters(self, model: nn.Module) -> None:
        """Start every rank from rank 0's weights."""
        if self.world_size == 1:
            return
        for param in model.parameters():
            dist.broadcast(param.data, src=0)
