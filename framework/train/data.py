"""Training examples as token ids, and packing a micro-batch into one flat sequence.

A packed batch concatenates sequences along one axis with positions restarting at 0 for each;
`framework.train.packing` keeps attention inside each sequence.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True, slots=True)
class SFTExample:
    input_ids: list[int]
    loss_mask: list[int]  # 1 where the token is a target (the assistant's answer), else 0

    def __post_init__(self) -> None:
        if len(self.input_ids) != len(self.loss_mask) or len(self.input_ids) < 2:
            raise ValueError("SFTExample needs >= 2 tokens and one mask entry per token")


@dataclass(frozen=True, slots=True)
class PreferenceExample:
    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]

    def __post_init__(self) -> None:
        if not self.prompt_ids or not self.chosen_ids or not self.rejected_ids:
            raise ValueError("PreferenceExample needs a prompt, a chosen and a rejected completion")


@dataclass(frozen=True, slots=True)
class KTOExample:
    prompt_ids: list[int]
    completion_ids: list[int]
    desirable: bool
    weight: float = 1.0  # scales this example's loss (e.g. an implicit signal counts for less)

    def __post_init__(self) -> None:
        if not self.prompt_ids or not self.completion_ids:
            raise ValueError("KTOExample needs a prompt and a completion")
        if not self.weight >= 0:
            raise ValueError(f"KTOExample weight must be >= 0, got {self.weight}")


def completion_sequence(prompt_ids: list[int], completion_ids: list[int]) -> SFTExample:
    """Prompt + completion with the loss on the completion only."""
    return SFTExample(list(prompt_ids) + list(completion_ids),
                      [0] * len(prompt_ids) + [1] * len(completion_ids))


@dataclass(slots=True)
class PackedBatch:
    input_ids: torch.Tensor  # (T,) all sequences back to back
    positions: torch.Tensor  # (T,) restarting at 0 per sequence
    target_ids: torch.Tensor  # (T,) the next token within the same sequence (0 where none)
    target_mask: torch.Tensor  # (T,) float: 1 where position t predicts a target token
    seq_index: torch.Tensor  # (T,) which sequence each token belongs to
    seq_lens: list[int]

    @property
    def num_seqs(self) -> int:
        return len(self.seq_lens)

    @property
    def num_tokens(self) -> int:
        return int(self.input_ids.numel())


def pack(sequences: list[SFTExample]) -> PackedBatch:
    """Concatenate sequences; the target of token t is token t+1 of its own sequence."""
    ids, pos, tgt, mask, index = [], [], [], [], []
    for i, seq in enumerate(sequences):
        n = len(seq.input_ids)
        ids += seq.input_ids
        pos += range(n)
        tgt += seq.input_ids[1:] + [0]
        mask += [float(m) for m in seq.loss_mask[1:]] + [0.0]
        index += [i] * n
    return PackedBatch(torch.tensor(ids), torch.tensor(pos), torch.tensor(tgt),
                       torch.tensor(mask), torch.tensor(index),
                       [len(s.input_ids) for s in sequences])
