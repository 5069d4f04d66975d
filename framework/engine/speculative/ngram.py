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
    for n in range(min(n_max, len(tokens) - 1), n_min - 1, -1):
        suffix = tokens[-n:]
        # windows[i] = tokens[i:i+n] for every start before the suffix itself
        windows = np.lib.stride_tricks.sliding_window_view(tokens[:-1], n)
        starts = np.flatnonzero((windows == suffix).all(axis=1))
        if len(starts):
            follow = int(starts[-1]) + n
            return tokens[follow:follow + k].tolist()
    return []
