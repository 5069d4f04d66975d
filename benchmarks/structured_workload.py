"""What `throughput.py --json-schema` runs: W with every request under a JSON schema.

The random-weight model never finishes a JSON value early because the schema asks for more than
128 tokens of it (an array of at least 64 objects), so every request still writes exactly 128
tokens and the run is step-for-step comparable with the free one. The tokenizer is a synthetic
49,152-token vocabulary with real bytes (the 256 single bytes, then seeded 2-6 character pieces of
JSON-ish text), so the grammar engine masks a vocabulary of SmolLM2's size; the free comparison
run uses the same tokenizer.
"""
from __future__ import annotations

import random

from shared import SamplingParams, StructuredOutputsParams

SCHEMA = {
    "type": "array", "minItems": 64,
    "items": {"type": "object",
              "properties": {"id": {"type": "integer"},
                             "name": {"type": "string", "maxLength": 16},
                             "kind": {"enum": ["cat", "dog", "robot"]},
                             "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
                             "pos": {"type": "object",
                                     "properties": {"x": {"type": "number"},
                                                    "y": {"type": "number"}},
                                     "required": ["x", "y"]}},
              "required": ["id", "name", "kind", "pos"]},
}
_PIECE_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ",:{}[]._-'
_SPECIAL_IDS = (0, 1, 2)  # pad, BOS, EOS as in the benchmark's model config


class PieceTokenizer:
    """A `shared.TokenizerLike` over a fixed synthetic vocabulary; encode is by single bytes."""

    bos_token_id, eos_token_ids = 1, [2]

    def __init__(self, vocab_size: int, seed: int = 0):
        rng = random.Random(seed)
        self.vocab_size = vocab_size
        pieces = [bytes([b]) for b in range(256)]
        while len(pieces) < vocab_size:
            length = rng.randint(2, 6)
            pieces.append("".join(rng.choice(_PIECE_CHARS) for _ in range(length)).encode())
        for special in _SPECIAL_IDS:
            pieces[special] = b""
        self._pieces = pieces

    def token_bytes(self) -> list[bytes]:
        return list(self._pieces)

    def encode(self, text: str, add_bos: bool = True) -> list[int]:
        return [self.bos_token_id] * add_bos + list(text.encode("utf-8"))

    def decode(self, token_ids: list[int], skip_special_tokens: bool = True) -> str:
        return b"".join(self._pieces[t] for t in token_ids).decode("utf-8", errors="replace")


def json_params(max_tokens: int) -> SamplingParams:
    return SamplingParams(temperature=0.0, max_tokens=max_tokens, ignore_eos=True,
                          structured_outputs=StructuredOutputsParams(json=SCHEMA))
