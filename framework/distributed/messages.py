"""What rank 0 broadcasts to the workers, one dataclass per kind of message.

Every rank must run the same collectives in the same order, so rank 0 announces each model call
before making it; a worker replays it on its shard. Tensors travel on the CPU inside the pickled
message (ids, positions, block tables: small); the hidden rows of a logits call follow as one
tensor broadcast, on the device.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from framework.layers import AttentionMetadata


@dataclass(slots=True)
class StartWorker:
    num_kv_blocks: int  # the KV pool size rank 0 chose; every rank allocates its shard of it
    block_size: int  # tokens per KV block
    quantization: str | None  # EngineConfig.quantization, applied to the worker's linears


@dataclass(slots=True)
class Forward:
    input_ids: torch.Tensor  # (T,) int64, on the CPU
    positions: torch.Tensor  # (T,) int64, on the CPU
    metadata: AttentionMetadata | None  # the step's paged-attention metadata, CPU tensors


@dataclass(slots=True)
class ComputeLogits:
    shape: tuple[int, int]  # (N, hidden) rows whose logits rank 0 wants; the tensor follows
    dtype: torch.dtype


@dataclass(slots=True)
class CopyBlocks:
    pairs: list[tuple[int, int]]  # (src, dst) KV blocks to copy before the next forward (CoW)


@dataclass(slots=True)
class Ping:
    """Sent while idle so workers never sit in one collective past its timeout, and so a dead
    rank is noticed between requests too."""


@dataclass(slots=True)
class Shutdown:
    """Leave the worker loop; the process exits."""


def metadata_to(meta: AttentionMetadata | None, device: torch.device | str
                ) -> AttentionMetadata | None:
    if meta is None:
        return None
    return AttentionMetadata(
        slot_mapping=meta.slot_mapping.to(device), block_tables=meta.block_tables.to(device),
        cu_seqlens_q=meta.cu_seqlens_q.to(device), context_lens=meta.context_lens.to(device),
        max_seqlen_q=meta.max_seqlen_q, max_context_len=meta.max_context_len)
