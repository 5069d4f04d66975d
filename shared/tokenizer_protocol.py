"""The tokenizer protocol the engine detokenizes with; `model/` implements it."""
from __future__ import annotations

from typing import Protocol


class TokenizerLike(Protocol):
    bos_token_id: int | None
    eos_token_ids: list[int]  # every id that ends generation (generation_config's list included)
    vocab_size: int

    def encode(self, text: str, add_bos: bool = True) -> list[int]:
        """Text -> ids, with BOS prepended when `add_bos` and the tokenizer has one."""

    def decode(self, token_ids: list[int], skip_special_tokens: bool = True) -> str:
        """Ids -> text. Decoding a prefix of ids gives a prefix of the text, up to a trailing
        incomplete UTF-8 sequence (shown as U+FFFD), which is how the engine streams safely."""
