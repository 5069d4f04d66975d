"""What a proposer returns, and the contract every proposer follows."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from framework.engine.sequence import Sequence


@dataclass(slots=True)
class Proposal:
    token_ids: list[int]  # drafts to append after the sequence's tokens (may be empty)
    probs: torch.Tensor | None = None  # (len(token_ids), V) the distribution each was drawn from


class Proposer(Protocol):
    def propose(self, seqs: list[Sequence], max_num_tokens: list[int]) -> list[Proposal]:
        """Called before a step is scheduled, for decodes that may speculate; at most
        max_num_tokens[i] drafts for seqs[i] (its token_ids hold no drafts at this point)."""

    def forget(self, live_seq_ids: set[int]) -> None:
        """Drop per-sequence state of sequences not in `live_seq_ids` (finished, preempted)."""
