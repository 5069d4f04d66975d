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
    remove = ranks >= k.unsqueeze(1)
    probs = sorted_logits.masked_fill(remove, float("-inf")).softmax(dim=-1)
    # Keep a token while the mass strictly before it is < top_p (the first token always stays).
    mass_before = probs.cumsum(dim=-1) - probs
    remove |= (mass_before >= top_p.unsqueeze(1)) & (top_p < 1).unsqueeze(1)
    remove |= probs < (min_p.unsqueeze(1) * probs[:, :1])
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
    outside them can survive; top-p without top-k -> the reference's full sort.
    """
    vocab = logits.shape[-1]
    k = _effective_k(top_k, vocab)
    has_k, has_p, has_min_p = k < vocab, top_p < 1, min_p > 0
    out = logits.clone()
    groups = (
        (has_k, _filter_top_k_rows),
        (~has_k & has_p, filter_logits),
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
