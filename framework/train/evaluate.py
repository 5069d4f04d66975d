"""Held-out loss: mean masked token cross-entropy of a model over SFT examples (no gradients)."""
from __future__ import annotations

import torch
from torch import nn

from framework.train import losses
from framework.train.data import SFTExample, pack


@torch.no_grad()
def mean_token_loss(model: nn.Module, examples: list[SFTExample], micro_batch_size: int = 32) -> float:
    """Sum of target-token NLL / number of target tokens, over all `examples`."""
    if not examples:
        raise ValueError("no examples to evaluate")
    total_nll, total_tokens = 0.0, 0.0
    for start in range(0, len(examples), micro_batch_size):
        batch = pack(examples[start:start + micro_batch_size])
        token_logp = losses.token_logps(model, batch)
        total_nll += float(losses.sft_loss_sum(token_logp, batch))
        total_tokens += float(batch.target_mask.sum())
    return total_nll / max(total_tokens, 1.0)
