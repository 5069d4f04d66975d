"""A tiny byte-level tokenizer implementing `shared.TokenizerLike` for engine tests.

Ids 0-255 are UTF-8 bytes; 256 is BOS and 257 EOS; ids up to `vocab_size` beyond that are unused
specials (so random-weight models with a larger vocab can emit them safely).
"""
from __future__ import annotations

BOS, EOS = 256, 257


class ByteTokenizer:
    def __init__(self, vocab_size: int = 300, with_bos: bool = True):
        assert vocab_size > EOS, "the byte tokenizer needs at least 258 ids"
        self.vocab_size = vocab_size
        self.bos_token_id = BOS if with_bos else None
        self.eos_token_ids = [EOS]

    def encode(self, text: str, add_bos: bool = True) -> list[int]:
        ids = list(text.encode("utf-8"))
        return [self.bos_token_id] + ids if add_bos and self.bos_token_id is not None else ids

    def decode(self, token_ids: list[int], skip_special_tokens: bool = True) -> str:
        out, pending = [], bytearray()
        for token in token_ids:
            if token < 256:
                pending.append(token)
                continue
            out.append(pending.decode("utf-8", errors="replace"))
            pending = bytearray()
            if not skip_special_tokens:
                out.append({BOS: "<s>", EOS: "</s>"}.get(token, f"<{token}>"))
        out.append(pending.decode("utf-8", errors="replace"))
        return "".join(out)
