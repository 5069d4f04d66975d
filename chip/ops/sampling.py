"""Top-k / top-p / min-p filtering and sampling over a batch of logits rows."""
from __future__ import annotations

import torch

from chip.dispatch import register


@register("filter_logits", "reference")
def filter_logits(logits: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor,
                  min_p: torch.Tensor) -> torch.Tensor:
    """Mask (to -inf) tokens outside each row's top-k, top-p nucleus and min-p floor.

    logits (B, V) float32 (already temperature-scaled); top_k (B,) int (<= 0 disables);
    top_p (B,) float in (0, 1]; min_p (B,) float in [0, 1]. Returns a new (B, V) tensor.
    """
    vocab = logits.shape[-1]
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    ranks = torch.arange(vocab, device=logits.device).unsqueeze(0)
    k = torch.where(top_k <= 0, torch.full_like(top_k, vocab), top_k.clamp(max=vocab))
    remove = ranks >= k.unsqueeze(1)
    probs = sorted_logits.masked_fill(remove, float("-inf")).softmax(dim=-1)
    # Keep a token while the mass strictly before it is < top_p (the first token always stays).
    mass_before = probs.cumsum(dim=-1) - probs
    remove |= mass_before >= top_p.unsqueeze(1)
    remove |= probs < (min_p.unsqueeze(1) * probs[:, :1])
    remove[:, 0] = False
    sorted_logits = sorted_logits.masked_fill(remove, float("-inf"))
    return torch.empty_like(logits).scatter_(-1, order, sorted_logits)


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
