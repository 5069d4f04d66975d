"""Rank 0's side of a tensor-parallel step: announce each model call, then make it.

`TensorParallelModel` wraps rank 0's shard so that the unchanged engine, model runner and prompt
scorer drive all ranks: every `forward` / `compute_logits` first broadcasts what the workers need
to make the same call. `TensorParallelRunner` adds the one step effect outside the model, the
copy-on-write KV block copies.
"""
from __future__ import annotations

import torch
from torch import nn

from framework.distributed.communicator import Communicator
from framework.distributed.messages import ComputeLogits, CopyBlocks, Forward, metadata_to
from framework.engine.model_runner import ModelRunner
from framework.layers import get_attention_metadata
from shared import CausalLM


class TensorParallelModel(nn.Module):
    """A `shared.CausalLM` over rank 0's shard that keeps the workers in lockstep."""

    def __init__(self, shard: CausalLM, comm: Communicator):
        super().__init__()
        self.shard, self.comm, self.config = shard, comm, shard.config

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """(T,) ids, (T,) positions -> (T, hidden), the same on every rank."""
        self.comm.broadcast_object(Forward(input_ids.cpu(), positions.cpu(),
                                           metadata_to(get_attention_metadata(), "cpu")))
        return self.shard(input_ids, positions)

    def compute_logits(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """(N, hidden) -> (N, vocab) float32, gathered from every rank's vocabulary slice."""
        hidden_states = hidden_states.contiguous()
        self.comm.broadcast_object(ComputeLogits(tuple(hidden_states.shape), hidden_states.dtype))
        self.comm.broadcast(hidden_states)
        return self.shard.compute_logits(hidden_states)


class TensorParallelRunner(ModelRunner):
    """The model runner of rank 0; its model must be a `TensorParallelModel`."""

    def copy_blocks(self, pairs: list[tuple[int, int]]) -> None:
        if pairs:
            self.model.comm.broadcast_object(CopyBlocks(list(pairs)))
        super().copy_blocks(pairs)
