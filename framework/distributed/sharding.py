"""Which slice of a full (checkpoint-shaped) tensor one rank holds.

One `ShardSpec` serves both the in-memory transform (slice a built model's weights) and the
loader (read only that slice from a safetensors file through `get_slice`), so the two can never
disagree about who holds what.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True, slots=True)
class ShardSpec:
    dim: int  # the split dimension: 0 for output rows (column-parallel, vocab), 1 for inputs
    start: int  # first index of the full tensor along `dim` this rank holds
    stop: int  # one past the last
    size: int  # this rank's length along `dim`: stop - start plus zero padding (uneven vocab)
    full_size: int  # the full tensor's length along `dim` (checked against the checkpoint)

    def __post_init__(self) -> None:
        assert self.dim in (0, 1), f"split dim must be 0 or 1, got {self.dim}"
        assert 0 <= self.start <= self.stop <= self.full_size, self
        assert self.size >= self.stop - self.start, self

    def local_shape(self, full_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = list(full_shape)
        shape[self.dim] = self.size
        return tuple(shape)

    def take(self, source) -> torch.Tensor:
        """This rank's part of `source` (a tensor, or a safetensors slice read lazily), padded
        with zeros to `size` along `dim`."""
        span = slice(self.start, self.stop)
        index = (span,) if self.dim == 0 else (slice(None), span)
        part = source[index]
        if part.shape[self.dim] == self.size:
            return part.contiguous()
        padded = part.new_zeros(self.local_shape(tuple(part.shape)))
        padded.narrow(self.dim, 0, part.shape[self.dim]).copy_(part)
        return padded


def even_split(full_size: int, rank: int, world_size: int, dim: int) -> ShardSpec:
    """Equal parts of ceil(full/world); the last ranks' parts are zero-padded when uneven."""
    size = -(-full_size // world_size)
    start = min(rank * size, full_size)
    return ShardSpec(dim, start, min(start + size, full_size), size, full_size)


def head_split(num_heads: int, head_dim: int, rank: int, world_size: int) -> ShardSpec:
    """Rows of a q/k/v projection for this rank's heads. With fewer heads than ranks (GQA KV
    heads) each head is replicated on world_size / num_heads consecutive ranks."""
    if num_heads >= world_size:
        assert num_heads % world_size == 0, (num_heads, world_size)
        per_rank = num_heads // world_size
        first = rank * per_rank
    else:
        assert world_size % num_heads == 0, (num_heads, world_size)
        per_rank, first = 1, rank * num_heads // world_size
    return ShardSpec(0, first * head_dim, (first + per_rank) * head_dim, per_rank * head_dim,
                     num_heads * head_dim)
