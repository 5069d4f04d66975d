"""Prompt lookup: propose the tokens that followed the latest earlier occurrence of the
sequence's last n tokens (n from prompt_lookup_max down to prompt_lookup_min).

It helps where the output repeats its input (copying, rewriting, code edits, quoting) and costs
one vectorized scan of the request's tokens per step. No model, no state between steps.
"""
from __future__ import annotations

import numpy as np

from framework.engine.sequence import Sequence
from framework.engine.speculative.proposal import Proposal


class NgramProposer:
    def __init__(self, prompt_lookup_min: int, prompt_lookup_max: int):
        self.lookup_min, self.lookup_max = prompt_lookup_min, prompt_lookup_max

    def propose(self, seqs: list[Sequence], max_num_tokens: list[int]) -> list[Proposal]:
        return [Proposal(lookup(seq.token_ids, k, self.lookup_min, self.lookup_max))
                for seq, k in zip(seqs, max_num_tokens)]

    def forget(self, live_seq_ids: set[int]) -> None:
        pass


def lookup(token_ids: list[int], k: int, n_min: int, n_max: int) -> list[int]:
    """Up to k tokens following the most recent earlier match of the longest suffix n-gram."""
    tokens = np.asarray(token_ids, dtype=np.int64)
    last = len(tokens) - 1
    # where an earlier match could end: the last token again, before the end (one pass over the
    # tokens; longer n-grams only check these candidates backwards)
    ends = np.flatnonzero(tokens[:-1] == tokens[-1])
    for n in range(min(n_max, last), n_min - 1, -1):
        candidates = ends[ends >= n - 1]
        same = np.ones(len(candidates), dtype=bool)
        for back in range(1, n):
            same &= tokens[candidates - back] == tokens[last - back]
        matches = candidates[same]
        if len(matches):
            follow = int(matches[-1]) + 1
            return tokens[follow:follow + k].tolist()
    return []
