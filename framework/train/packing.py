"""Attention restricted to each sequence of a packed batch (block-diagonal causal).

The model's attention layers call the chip op `causal_attention` when no serving metadata is set;
inside `packed_attention(seq_lens)` that op pads the packed tokens into (B, H, L, D), runs causal
attention per row and unpads, so one forward pass covers the whole micro-batch.

Sequences are padded in buckets of similar length rather than all to the longest: a micro-batch
of 45-token chats with a few 400-token tool conversations padded to 400 spent most of its
attention on padding (the demo corpus with tool use in its mix: 0.76 -> 0.63 s per training step).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from chip.dispatch import override

# A bucket grows while padding its members to its longest costs at most this factor of their
# real attention area (sum of squared lengths); a new bucket starts otherwise.
MAX_PADDING_FACTOR = 1.5


@dataclass(frozen=True, slots=True)
class _Bucket:
    """Sequences padded together: where their tokens are in the packed batch, and where they go
    in the (rows, max_len) padded block."""
    token_index: torch.Tensor  # (n,) positions in the packed batch
    rows: torch.Tensor  # (n,) row in the padded block
    cols: torch.Tensor  # (n,) position inside the sequence
    num_rows: int
    max_len: int


def _buckets(seq_lens: list[int]) -> list[_Bucket]:
    starts = [0]
    for n in seq_lens[:-1]:
        starts.append(starts[-1] + n)
    order = sorted(range(len(seq_lens)), key=lambda i: seq_lens[i])
    groups: list[list[int]] = []
    area = 0
    for i in order:  # ascending length: the newest member is the bucket's longest
        n = seq_lens[i]
        if groups and (len(groups[-1]) + 1) * n * n <= MAX_PADDING_FACTOR * (area + n * n):
            groups[-1].append(i)
            area += n * n
        else:
            groups.append([i])
            area = n * n
    out = []
    for group in groups:
        lens = torch.tensor([seq_lens[i] for i in group])
        token_index = torch.cat([torch.arange(starts[i], starts[i] + seq_lens[i]) for i in group])
        rows = torch.repeat_interleave(torch.arange(len(group)), lens)
        cols = torch.cat([torch.arange(seq_lens[i]) for i in group])
        out.append(_Bucket(token_index, rows, cols, len(group), int(lens.max())))
    return out


def _attend_bucket(bucket: _Bucket, q, k, v, scale: float) -> torch.Tensor:
    group = q.shape[1] // k.shape[1]
    padded = []
    for x in (q, k, v):
        out = x.new_zeros(bucket.num_rows, bucket.max_len, x.shape[1], x.shape[2])
        out[bucket.rows, bucket.cols] = x[bucket.token_index]
        padded.append(out.transpose(1, 2))  # (B, H, L, D)
    qh, kh, vh = padded
    if group > 1:
        kh, vh = kh.repeat_interleave(group, dim=1), vh.repeat_interleave(group, dim=1)
    # Padding sits after each sequence, so causal rows never see it.
    out = F.scaled_dot_product_attention(qh, kh, vh, is_causal=True, scale=scale)
    return out.transpose(1, 2)[bucket.rows, bucket.cols]  # (n, Hq, D)


@contextlib.contextmanager
def packed_attention(seq_lens: list[int]) -> Iterator[None]:
    """Within the block, plain causal attention sees only tokens of the same packed sequence."""
    buckets = _buckets(seq_lens)

    def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
        out = q.new_empty(q.shape[0], q.shape[1], v.shape[2])
        for bucket in buckets:
            out[bucket.token_index] = _attend_bucket(bucket, q, k, v, scale)
        return out

    with override("causal_attention", attend):
        yield


# Ops whose device fast paths are inference-only (they write into `out=` buffers, no backward).
DIFFERENTIABLE_OPS = ("rms_norm", "silu_and_mul", "rotary")


@contextlib.contextmanager
def differentiable_ops() -> Iterator[None]:
    """Within the block, layers use the torch reference ops, which autograd can differentiate."""
    with contextlib.ExitStack() as stack:
        for op in DIFFERENTIABLE_OPS:
            stack.enter_context(override(op, "reference"))
        yield
