"""The step's attention metadata, set by the model runner around one forward pass.

Models never see it: their `Attention` layers read it. With none set, attention treats the input
as one contiguous sequence with no cache (parity tests, training).
"""
from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass(slots=True)
class AttentionMetadata:
    slot_mapping: torch.Tensor  # (T,) int64: flat KV-pool slot for each new token
    block_tables: torch.Tensor  # (B, max_blocks) int32: the blocks of each sequence, padded
    cu_seqlens_q: torch.Tensor  # (B+1,) int32: offsets of each sequence's new tokens in the batch
    context_lens: torch.Tensor  # (B,) int32: tokens in each sequence's context incl. the new ones
    max_seqlen_q: int  # longest run of new tokens (1 when the step is pure decode)
    max_context_len: int


# A context variable, not a module global: two engines may step at once in different threads (the
# old and the new model during a hot swap), and each forward must see only its own step's metadata.
_current: contextvars.ContextVar[AttentionMetadata | None] = contextvars.ContextVar(
    "attention_metadata", default=None)


def get_attention_metadata() -> AttentionMetadata | None:
    return _current.get()


@contextlib.contextmanager
def attention_metadata(metadata: AttentionMetadata) -> Iterator[None]:
    token = _current.set(metadata)
    try:
        yield
    finally:
        _current.reset(token)
