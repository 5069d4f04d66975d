"""Token embedding (vocab, hidden), also usable as a tied output head."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from framework.layers.linear import PackedWeightCache, inference_linear


class Embedding(nn.Module):
    def __init__(self, num_embeddings: int, embedding_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_embeddings, embedding_dim))
        if not self.weight.is_meta:  # the loader builds on meta: there, init imports torch._dynamo
            nn.init.normal_(self.weight, std=0.02)
        self._packed = PackedWeightCache()

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(token_ids, self.weight)

    def as_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Tied head: (N, hidden) -> (N, vocab) float32."""
        return inference_linear(hidden, self.weight, None, self._packed).float()
