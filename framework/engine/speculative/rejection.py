"""Verify draft tokens against the target's logits in one pass: the sampled tokens are exact.

A speculating sequence brings k+1 logits rows: row i is the target's distribution for the token
after draft i (row 0: after the last real token). Greedy rows accept drafts while they equal the
target's argmax, then take the argmax at the first mismatch (or after the last draft), so the
output is the non-speculative greedy output token for token.

Sampled rows use rejection sampling (Leviathan et al. 2023, "Fast Inference from Transformers
via Speculative Decoding"): draft d_i, drawn from the proposal q_i, is kept with probability
min(1, p_i(d_i) / q_i(d_i)); the first rejected position instead draws from the residual
norm(max(0, p_i - q_i)); if every draft is kept, one more token comes from p_{k+1}. Every emitted
token is then distributed exactly as p. A deterministic proposal (prompt lookup) is q = one-hot.
p is the distribution the plain sampler draws from: temperature, then top-k / top-p / min-p.
Requests with penalties, logit bias, grammars or logprobs never speculate (see decoder.py), so
nothing else shapes p.

This module knows nothing about blocks or scheduling; it only turns rows into tokens.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from chip import dispatch
from framework.engine.sequence import Sequence
from shared import SamplingParams


@dataclass(slots=True)
class Verified:
    token_ids: list[int]  # per sequence: the token the plain sampler or the verifier chose
    logprobs: list  # per sequence: the plain sampler's logprobs entry (None for speculating rows)
    accepted_draft_ids: list[list[int]]  # per sequence: drafts kept, emitted before token_ids[i]


def target_probs(logits: torch.Tensor, params: list[SamplingParams]) -> torch.Tensor:
    """(R, V) logits -> (R, V) the distribution the sampler draws from for each row's params."""
    device = logits.device
    temps = torch.tensor([p.temperature for p in params], device=device).unsqueeze(1)
    scaled = logits / temps
    if any(p.top_k > 0 or p.top_p < 1.0 or p.min_p > 0.0 for p in params):
        scaled = dispatch("filter_logits", device.type)(
            scaled, torch.tensor([p.top_k for p in params], device=device),
            torch.tensor([p.top_p for p in params], device=device),
            torch.tensor([p.min_p for p in params], device=device))
    return scaled.softmax(dim=-1)


def draw(probs: torch.Tensor, generator: torch.Generator | None) -> int:
    """One token from a (V,) distribution with the row's own generator."""
    return int(dispatch("sample", probs.device.type)(probs.unsqueeze(0), [generator])[0])


def rejection_sample(p: torch.Tensor, q: torch.Tensor | None, drafts: list[int],
                     generator: torch.Generator | None) -> tuple[int, int]:
    """p (k+1, V) target, q (k, V) proposal (None: drafts were deterministic), k drafts ->
    (drafts accepted, the token that follows them)."""
    k = len(drafts)
    index = torch.arange(k, device=p.device)
    draft_ids = torch.tensor(drafts, device=p.device)
    p_draft = p[index, draft_ids]  # (k,)
    q_draft = q[index, draft_ids] if q is not None else torch.ones_like(p_draft)
    uniform = torch.rand(k, generator=generator, device=p.device)
    # u < p/q, written without dividing (q(d) > 0 whenever d was drawn from q)
    kept = (uniform * q_draft < p_draft).tolist()
    num_accepted = kept.index(False) if False in kept else k
    if num_accepted == k:
        return k, draw(p[k], generator)
    row = num_accepted
    if q is not None:
        residual = (p[row] - q[row]).clamp(min=0.0)
    else:
        residual = p[row].clone()
        residual[drafts[row]] = 0.0
    total = residual.sum()
    # p == q makes the residual empty, but then the draft is never rejected; guard rounding
    residual = residual / total if total > 0 else p[row]
    return num_accepted, draw(residual, generator)


# the ordinary sampler: (rows, V) logits of sequences without drafts -> (tokens, logprobs)
PlainSampler = Callable[[torch.Tensor, list[Sequence]], tuple[list[int], list]]


def verify(logits: torch.Tensor, seqs: list[Sequence], sample_plain: PlainSampler) -> Verified:
    """logits (sum of 1 + num_spec_tokens over seqs, V) float32, each sequence's rows in order.
    Sequences without drafts go to `sample_plain` (the ordinary sampler) with their one row."""
    counts = [s.num_spec_tokens + 1 for s in seqs]
    ends = torch.tensor(counts).cumsum(0).tolist()
    tokens: list[int] = [0] * len(seqs)
    logprobs: list = [None] * len(seqs)
    accepted: list[list[int]] = [[] for _ in seqs]
    plain = [i for i, s in enumerate(seqs) if not s.num_spec_tokens]
    if plain:
        rows = torch.tensor([ends[i] - 1 for i in plain], device=logits.device)
        plain_tokens, plain_logprobs = sample_plain(logits.index_select(0, rows),
                                                    [seqs[i] for i in plain])
        for j, i in enumerate(plain):
            tokens[i], logprobs[i] = plain_tokens[j], plain_logprobs[j]
    greedy_argmax = logits.argmax(dim=-1).tolist()
    for i, seq in enumerate(seqs):
        k = seq.num_spec_tokens
        if not k:
            continue
        start, drafts = ends[i] - k - 1, seq.token_ids[-k:]
        if seq.params.greedy:
            target = greedy_argmax[start:ends[i]]
            num_accepted = next((j for j in range(k) if drafts[j] != target[j]), k)
            token = target[num_accepted]
        else:
            p = target_probs(logits[start:ends[i]], [seq.params] * (k + 1))
            num_accepted, token = rejection_sample(p, seq.spec_draft_probs, drafts, seq.generator)
        tokens[i], accepted[i] = token, drafts[:num_accepted]
    return Verified(tokens, logprobs, accepted)
