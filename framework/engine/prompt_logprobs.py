"""Log-probabilities of a request's own prompt tokens (vLLM's `prompt_logprobs`), scored in prefill.

Position p's logits predict token p + 1, so a prefill chunk covering positions [start, start + n)
scores prompt tokens start + 1 .. start + n (never past the prompt: the last prompt position
predicts the first generated token, which the sampler handles). Chunks arrive in order, one per
step, so a chunked prefill fills the list piece by piece; a recomputed (preempted) sequence scores
the same positions again and overwrites them with equal values. The first prompt token has no
logprob (nothing precedes it): its entry is None, as in vLLM.

Only requests that ask pay for this: their prompt rows go through the LM head, which a plain
prefill skips. Such requests read no prefix-cache blocks (see `BlockManager.cached_prefix`), since
a cached block's positions are never run and so could not be scored.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from framework.engine.scheduler import SchedulerOutput
from framework.engine.sequence import Sequence
from shared import CausalLM, Logprob


@dataclass(slots=True)
class PromptLogprobsChunk:
    # The sequence whose prompt was scored (a forking parent scores for all its samples).
    seq: Sequence
    # Index into the prompt of the first token scored (>= 1: token 0 has no logprob).
    first_token_index: int
    # One entry per scored token: its own logprob and rank plus the top-k alternatives.
    entries: list[dict[int, Logprob]]


def wants_prompt_logprobs(seq: Sequence) -> bool:
    return seq.params.prompt_logprobs is not None


def score_prompts(model: CausalLM, hidden: torch.Tensor, scheduled: SchedulerOutput,
                  cu_seqlens_q: torch.Tensor) -> list[PromptLogprobsChunk]:
    """hidden (T, H): the step's hidden states, laid out as `scheduled`. Returns one chunk per
    sequence that asked for prompt logprobs and computed prompt positions this step."""
    chunks = []
    starts = cu_seqlens_q.tolist()
    for i, (seq, num_new) in enumerate(zip(scheduled.seqs, scheduled.num_new_tokens)):
        if not wants_prompt_logprobs(seq):
            continue
        first_pos = seq.num_computed_tokens
        end_pos = min(first_pos + num_new, seq.num_prompt_tokens - 1)  # positions that score
        if end_pos <= first_pos:
            continue
        rows = torch.arange(starts[i], starts[i] + end_pos - first_pos, device=hidden.device)
        targets = seq.token_ids[first_pos + 1:end_pos + 1]
        logits = model.compute_logits(hidden.index_select(0, rows))  # (R, V) float32
        entries = logprob_entries(logits.log_softmax(dim=-1), targets, seq.params.prompt_logprobs)
        chunks.append(PromptLogprobsChunk(seq, first_pos + 1, entries))
    return chunks


def logprob_entries(logprobs: torch.Tensor, targets: list[int],
                    top_n: int) -> list[dict[int, Logprob]]:
    """logprobs (R, V) -> per row {target: its logprob and rank, then the top_n alternatives}."""
    target_ids = torch.tensor(targets, device=logprobs.device).unsqueeze(1)
    chosen = logprobs.gather(1, target_ids)  # (R, 1)
    ranks = ((logprobs > chosen).sum(dim=1) + 1).tolist()
    chosen_values = chosen.squeeze(1).tolist()
    top_values, top_ids = (logprobs.topk(top_n, dim=-1) if top_n else (None, None))
    top_values = top_values.tolist() if top_n else []
    top_ids = top_ids.tolist() if top_n else []
    entries = []
    for row, target in enumerate(targets):
        entry = {target: Logprob(chosen_values[row], ranks[row])}
        for rank in range(top_n):
            entry.setdefault(top_ids[row][rank], Logprob(top_values[row][rank], rank + 1))
        entries.append(entry)
    return entries
