"""OpenAI's `logit_bias`: per request, a constant added to chosen tokens' logits before sampling.

Applied after penalties and before the min_tokens stop mask, temperature and the top-k/top-p/min-p
filters, so +100 all but forces a token and -100 all but bans it, greedy rows included. The
sampler's logprobs are those of the raw distribution, as for every other logits processor here.
"""
from __future__ import annotations

import torch

from framework.engine.sequence import Sequence


def has_logit_bias(seq: Sequence) -> bool:
    return bool(seq.params.logit_bias)


def apply_logit_bias(logits: torch.Tensor, seqs: list[Sequence]) -> torch.Tensor:
    """logits (N, V), one row per sequence -> a biased copy."""
    rows, cols, values = [], [], []
    for row, seq in enumerate(seqs):
        for token_id, bias in (seq.params.logit_bias or {}).items():
            rows.append(row)
            cols.append(token_id)
            values.append(float(bias))
    device = logits.device
    bias = torch.zeros_like(logits)
    bias.index_put_((torch.tensor(rows, device=device), torch.tensor(cols, device=device)),
                    torch.tensor(values, dtype=logits.dtype, device=device))
    return logits + bias
