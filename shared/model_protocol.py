"""The model protocol the framework runs; `model/` implements it.

The model knows nothing about batching or caches: it is called on a flattened batch of tokens, and
its attention layers read the step's attention metadata that the framework's model runner sets
(see `framework.layers.attention`). Called with no metadata set, it treats the tokens as one
sequence starting at position `positions[0]` with no cache (used for parity tests and training).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from shared.model_config import ModelConfig

if TYPE_CHECKING:  # torch is not a runtime dependency of shared/
    import torch


class CausalLM(Protocol):
    config: ModelConfig

    def forward(self, input_ids: "torch.Tensor", positions: "torch.Tensor") -> "torch.Tensor":
        """(T,) token ids and (T,) positions -> (T, hidden_size) final hidden states (normed)."""

    def compute_logits(self, hidden_states: "torch.Tensor") -> "torch.Tensor":
        """(N, hidden_size) -> (N, vocab_size) logits. Called only on the rows that get sampled."""
