"""Top-k / top-p / min-p filtering and sampling over a batch of logits rows.

Semantics, per row, on the tokens sorted by logit (descending):
- top-k keeps the first k (k <= 0 disables);
- top-p keeps the minimal prefix of those whose probability mass (renormalized over the top-k)
  reaches top_p (top_p >= 1 disables: float rounding must not drop the tail);
- min-p drops tokens whose probability is below min_p times the most likely token's;
- the most likely token is always kept.
"""
from __future__ import annotations

import torch

from chip.dispatch import register


def _effective_k(top_k: torch.Tensor, vocab: int) -> torch.Tensor:
    return torch.where(top_k <= 0, torch.full_like(top_k, vocab), top_k.clamp(max=vocab))


def _remove_sorted(sorted_logits: torch.Tensor, k: torch.Tensor, top_p: torch.Tensor,
                   min_p: torch.Tensor) -> torch.Tensor:
    """(B, N) bool: which of the descending-sorted candidates the three filters drop."""
    ranks = torch.arange(sorted_logits.shape[-1], device=sorted_logits.device).unsqueeze(0)
    beyond_k = ranks >= k.unsqueeze(1)
    probs = sorted_logits.masked_fill(beyond_k, float("-inf")).softmax(dim=-1)
    return beyond_k | _remove_by_mass(probs, top_p, min_p)


def _remove_by_mass(sorted_probs: torch.Tensor, top_p: torch.Tensor, min_p: torch.Tensor) -> torch.Tensor:
    """(B, N) bool: top-p and min-p on descending probabilities (the first token always stays)."""
    # Keep a token while the mass strictly before it is < top_p.
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
    remove = (mass_before >= top_p.unsqueeze(1)) & (top_p < 1).unsqueeze(1)
    remove |= sorted_probs < (min_p.unsqueeze(1) * sorted_probs[:, :1])
    remove[:, 0] = False
    return remove


@register("filter_logits", "reference")
def filter_logits(logits: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor,
                  min_p: torch.Tensor) -> torch.Tensor:
    """Mask (to -inf) tokens outside each row's top-k, top-p nucleus and min-p floor.

    logits (B, V) float32 (already temperature-scaled); top_k (B,) int (<= 0 disables);
    top_p (B,) float in (0, 1]; min_p (B,) float in [0, 1]. Returns a new (B, V) tensor.
    """
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    remove = _remove_sorted(sorted_logits, _effective_k(top_k, logits.shape[-1]), top_p, min_p)
    sorted_logits = sorted_logits.masked_fill(remove, float("-inf"))
    return torch.empty_like(logits).scatter_(-1, order, sorted_logits)


@register("filter_logits", "cpu")
def filter_logits_fast(logits: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor,
                       min_p: torch.Tensor) -> torch.Tensor:
    """Same contract as `filter_logits`, without sorting the whole vocabulary when it can be avoided.

    Rows are grouped by what they need: nothing enabled -> copied; min-p only -> one softmax and a
    threshold; top-k set -> only the top max(k) candidates are sorted (torch.topk), since nothing
    outside them can survive; top-p without top-k -> the nucleus is searched among the few most
    likely tokens first (see `_filter_nucleus_rows`).
    """
    vocab = logits.shape[-1]
    k = _effective_k(top_k, vocab)
    has_k, has_p, has_min_p = k < vocab, top_p < 1, min_p > 0
    out = logits.clone()
    groups = (
        (has_k, _filter_top_k_rows),
        (~has_k & has_p, _filter_nucleus_rows),
        (~has_k & ~has_p & has_min_p, _filter_min_p_rows),
    )
    for rows_mask, fn in groups:
        if not bool(rows_mask.any()):
            continue
        if bool(rows_mask.all()):
            return fn(logits, top_k, top_p, min_p)
        rows = rows_mask.nonzero().squeeze(1)
        out[rows] = fn(logits[rows], top_k[rows], top_p[rows], min_p[rows])
    return out


def _filter_top_k_rows(logits: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor,
                       min_p: torch.Tensor) -> torch.Tensor:
    k = _effective_k(top_k, logits.shape[-1])
    cand_logits, cand_ids = logits.topk(int(k.max()), dim=-1)  # (B, max_k), sorted descending
    cand_logits = cand_logits.masked_fill(_remove_sorted(cand_logits, k, top_p, min_p), float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter_(-1, cand_ids, cand_logits)


def _filter_nucleus_rows(logits: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor,
                         min_p: torch.Tensor, first_candidates: int = 64) -> torch.Tensor:
    """Top-p (and min-p) without top-k, sorting only the m most likely tokens (m = 64, 256, ...).

    Once the top m hold at least top_p of the mass in every row, the nucleus lies inside them and
    every token outside is dropped anyway; LLM distributions are peaked, so m stays small. Falls
    back to the full sort when the nucleus is wider than a quarter of the vocabulary.
    """
    vocab = logits.shape[-1]
    probs = logits.softmax(dim=-1)  # over the whole vocabulary, as without top-k
    num_candidates = first_candidates
    while num_candidates * 4 <= vocab:
        cand_probs, cand_ids = probs.topk(num_candidates, dim=-1)  # (B, m), descending
        # The same float32 cumulative sum the cut below uses, so the check and the cut agree.
        if bool((cand_probs.cumsum(dim=-1)[:, -1] >= top_p).all()):
            remove = _remove_by_mass(cand_probs, top_p, min_p)
            cand_logits = logits.gather(-1, cand_ids).masked_fill(remove, float("-inf"))
            return torch.full_like(logits, float("-inf")).scatter_(-1, cand_ids, cand_logits)
        num_candidates *= 4
    return filter_logits(logits, top_k, top_p, min_p)


def _filter_min_p_rows(logits: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor,
                       min_p: torch.Tensor) -> torch.Tensor:
    probs = logits.softmax(dim=-1)
    floor = min_p.unsqueeze(1) * probs.max(dim=-1, keepdim=True).values
    return logits.masked_fill(probs < floor, float("-inf"))


@register("sample", "reference")
def sample(probs: torch.Tensor, generators: list[torch.Generator | None]) -> torch.Tensor:
    """Draw one token per row of probs (B, V); row i uses generators[i] when not None.

    Uses the exponential-race trick (argmax p / E, E ~ Exp(1)) so each row's draw depends only on its
    own generator: the same seed gives the same token whatever else is in the batch.
    """
    noise = torch.empty_like(probs)
    for i, gen in enumerate(generators):
        noise[i].exponential_(generator=gen)
    return (probs / noise).argmax(dim=-1)
