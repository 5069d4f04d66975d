"""Parallel layers built from a rank's slice of the plain layers in `framework.layers`.

Column-parallel projections (q/k/v, gate/up) need no class of their own: a `Linear` holding its
rank's output rows computes its part of the output, and the next row-parallel layer consumes it.
Row-parallel layers hold input columns and sum partial outputs with one all-reduce. Vocabulary-
parallel layers hold a range of token rows: the embedding all-reduces (each token's row lives on
one rank, the others contribute zeros) and the head all-gathers logits.

Parameter names stay those of the layers they replace, so checkpoint names keep working.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from framework.distributed.communicator import Communicator
from framework.distributed.sharding import ShardSpec
from framework.layers import Embedding, Linear
from framework.layers.linear import inference_linear


def shard_parameter(module: nn.Module, name: str, spec: ShardSpec) -> None:
    """Replace `module.<name>` by this rank's slice: sliced from real data, or a new meta
    tensor of the local shape when the model was built on the meta device (the loader fills it)."""
    old = getattr(module, name)
    if old.is_meta:
        new = torch.empty(spec.local_shape(tuple(old.shape)), dtype=old.dtype, device="meta")
    else:
        new = spec.take(old.detach()).clone()
    setattr(module, name, nn.Parameter(new, requires_grad=old.requires_grad))


def shard_column_(linear: Linear, spec: ShardSpec) -> None:
    """Keep only output rows `spec` (and their bias) of a plain Linear, in place."""
    assert spec.dim == 0
    shard_parameter(linear, "weight", spec)
    if linear.bias is not None:
        shard_parameter(linear, "bias", spec)
    linear.out_features = spec.size


class RowParallelLinear(Linear):
    """Holds input columns `spec` of a bias-free Linear; sums the partial outputs over ranks."""

    def __init__(self, linear: Linear, spec: ShardSpec, comm: Communicator):
        assert spec.dim == 1 and linear.bias is None, "row-parallel layers carry no bias here"
        with torch.device(linear.weight.device):
            super().__init__(spec.size, linear.out_features, bias=False)
        self.weight = linear.weight
        shard_parameter(self, "weight", spec)
        self.quantization = linear.quantization
        self.comm = comm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.comm.all_reduce(super().forward(x))  # (T, out): the one sync of this layer


class VocabParallelEmbedding(Embedding):
    """Token rows [start, stop) of the embedding; also the tied head, gathering logits."""

    def __init__(self, embedding: Embedding, spec: ShardSpec, comm: Communicator):
        num_embeddings, dim = embedding.weight.shape
        with torch.device(embedding.weight.device):
            super().__init__(spec.size, dim)
        self.weight = embedding.weight
        shard_parameter(self, "weight", spec)
        self.spec, self.comm, self.vocab_size = spec, comm, num_embeddings

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        local = token_ids - self.spec.start
        outside = (local < 0) | (local >= self.spec.stop - self.spec.start)
        rows = F.embedding(local.masked_fill(outside, 0), self.weight)  # (T, hidden)
        return self.comm.all_reduce(rows.masked_fill(outside.unsqueeze(-1), 0.0))

    def as_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        local = inference_linear(hidden, self.weight, None, self._packed).float()  # (N, V/world)
        return gather_vocab(self.comm, local, self.vocab_size)


class VocabParallelHead(Linear):
    """Output rows [start, stop) of an untied LM head; returns the gathered (N, vocab) logits."""

    def __init__(self, head: Linear, spec: ShardSpec, comm: Communicator):
        assert head.bias is None, "the LM head carries no bias here"
        with torch.device(head.weight.device):
            super().__init__(head.in_features, spec.size, bias=False)
        self.weight = head.weight
        shard_parameter(self, "weight", spec)
        self.comm, self.vocab_size = comm, head.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gather_vocab(self.comm, super().forward(x), self.vocab_size)


def gather_vocab(comm: Communicator, local: torch.Tensor, vocab_size: int) -> torch.Tensor:
    # Ranks hold equal, zero-padded parts in rank order; the padding sits past the vocabulary.
    return comm.all_gather(local, dim=-1)[..., :vocab_size]  # (N, vocab)
