"""Attention restricted to each sequence of a packed batch (block-diagonal causal).

The model's attention layers call the chip op `causal_attention` when no serving metadata is set;
inside `packed_attention(seq_lens)` that op pads the packed tokens into (B, H, L, D), runs causal
attention per row and unpads, so one forward pass covers the whole micro-batch.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from chip.dispatch import override


def _padding_index(seq_lens: list[int]) -> tuple[torch.Tensor, torch.Tensor, int]:
    max_len = max(seq_lens)
    rows = torch.repeat_interleave(torch.arange(len(seq_lens)), torch.tensor(seq_lens))
    cols = torch.cat([torch.arange(n) for n in seq_lens])
    return rows, cols, max_len


@contextlib.contextmanager
def packed_attention(seq_lens: list[int]) -> Iterator[None]:
    """Within the block, plain causal attention sees only tokens of the same packed sequence."""
    rows, cols, max_len = _padding_index(seq_lens)
    batch = len(seq_lens)

    def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
        group = q.shape[1] // k.shape[1]
        padded = []
        for x in (q, k, v):
            out = x.new_zeros(batch, max_len, x.shape[1], x.shape[2])
            out[rows, cols] = x
            padded.append(out.transpose(1, 2))  # (B, H, L, D)
        qh, kh, vh = padded
        if group > 1:
            kh, vh = kh.repeat_interleave(group, dim=1), vh.repeat_interleave(group, dim=1)
        # Padding sits after each sequence, so causal rows never see it.
        out = F.scaled_dot_product_attention(qh, kh, vh, is_causal=True, scale=scale)
        return out.transpose(1, 2)[rows, cols]  # (T, Hq, D)

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
