"""xgrammar vs llguidance on this project's vocabularies: compile time and per-token mask cost.

For each tokenizer (the demo model's byte-level BPE, stories260K's sentencepiece-style BPE) and
each engine: time to turn a nested JSON schema into a matcher (first compile, and a cache hit),
then walk a valid instance token by token, timing "fill this row's bitmask" and "accept the token".
Run: `python -m benchmarks.grammar_engines` (llguidance is not a dependency: `pip install
llguidance==1.9.1` first). This is how the engine behind structured outputs was chosen (see
README, "Structured outputs").
"""
from __future__ import annotations

import json
import logging
import statistics
import time
from pathlib import Path

import torch

from model.tokenizer import Tokenizer

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
VOCABS = {"demo": ROOT / "app" / "demo" / "model",
          "stories260K": ROOT.parent / "shared" / "models" / "stories260K-hf"}

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 4},
        "address": {"type": "object",
                    "properties": {"city": {"type": "string"},
                                   "zip": {"type": "string", "pattern": "^[0-9]{5}$"},
                                   "geo": {"type": "object",
                                           "properties": {"lat": {"type": "number"},
                                                          "lon": {"type": "number"}},
                                           "required": ["lat", "lon"]}},
                    "required": ["city", "geo"]},
        "kind": {"enum": ["person", "robot", "other"]},
    },
    "required": ["name", "age", "address", "kind"],
}
INSTANCE = {"name": "Ada Lovelace", "age": 36, "tags": ["math", "poetry"],
            "address": {"city": "London", "zip": "12345", "geo": {"lat": 51.5, "lon": -0.12}},
            "kind": "person"}


def _xgrammar(tokenizer: Tokenizer, vocab_size: int):
    import xgrammar as xgr

    info = xgr.TokenizerInfo(tokenizer.token_bytes(), xgr.VocabType.RAW, vocab_size=vocab_size,
                             stop_token_ids=tokenizer.eos_token_ids)
    compiler = xgr.GrammarCompiler(info, max_threads=1)

    def compile_():
        return xgr.GrammarMatcher(compiler.compile_json_schema(json.dumps(SCHEMA)))

    def fill(matcher, bitmask):
        matcher.fill_next_token_bitmask(bitmask, 0)

    return compile_, fill, lambda m, t: m.accept_token(t)


def _llguidance(tokenizer: Tokenizer, vocab_size: int):
    import llguidance

    class Vocab:  # what llguidance.TokenizerWrapper reads
        def __init__(self):
            self.eos_token_id = tokenizer.eos_token_ids[0]
            self.bos_token_id = tokenizer.bos_token_id
            own = tokenizer.token_bytes()
            self.tokens = own + [b""] * (vocab_size - len(own))
            self.special_token_ids = [i for i, b in enumerate(self.tokens) if not b]

        def __call__(self, text: bytes) -> list[int]:
            return tokenizer.encode(text.decode("utf-8", "replace"), add_bos=False)

    lltok = llguidance.LLTokenizer(llguidance.TokenizerWrapper(Vocab()))
    grammar = llguidance.LLMatcher.grammar_from_json_schema(
        json.dumps(SCHEMA), defaults={"whitespace_flexible": True})

    def compile_():
        return llguidance.LLMatcher(lltok, grammar)

    def fill(matcher, bitmask):
        from llguidance.torch import fill_next_token_bitmask
        fill_next_token_bitmask(matcher, bitmask, 0)

    return compile_, fill, lambda m, t: m.consume_token(t)


def measure(name: str, tokenizer: Tokenizer, build) -> dict:
    vocab_size = max(tokenizer.vocab_size, len(tokenizer.token_bytes()))
    compile_, fill, accept = build(tokenizer, vocab_size)
    started = time.perf_counter()
    matcher = compile_()
    first_compile = time.perf_counter() - started
    started = time.perf_counter()
    matcher = compile_()
    again = time.perf_counter() - started
    bitmask = torch.full((1, (vocab_size + 31) // 32), -1, dtype=torch.int32)
    vocab, rest = tokenizer.token_bytes(), json.dumps(INSTANCE).encode()
    fill_s, accept_s = [], []
    while True:
        t0 = time.perf_counter()
        fill(matcher, bitmask)
        t1 = time.perf_counter()
        token = _next_token(vocab, rest, bitmask[0], tokenizer.eos_token_ids[0])
        t2 = time.perf_counter()
        accept(matcher, token)
        accept_s.append(time.perf_counter() - t2)
        fill_s.append(t1 - t0)
        if not rest:
            break
        rest = rest[len(vocab[token]):]
    return {"engine": name, "compile_ms": first_compile * 1e3, "compile_again_ms": again * 1e3,
            "first_mask_ms": fill_s[0] * 1e3, "mask_us_median": statistics.median(fill_s[1:]) * 1e6,
            "mask_us_p99": sorted(fill_s)[int(0.99 * (len(fill_s) - 1))] * 1e6,
            "accept_us_mean": statistics.mean(accept_s) * 1e6, "tokens": len(fill_s)}


def _next_token(vocab: list[bytes], rest: bytes, mask_row: torch.Tensor, eos: int) -> int:
    """The longest allowed token spelling the start of `rest` (EOS once it is all written)."""
    def allowed(i: int) -> bool:
        return bool((int(mask_row[i // 32]) >> (i % 32)) & 1)

    if not rest:
        assert allowed(eos), "the grammar does not accept the whole instance"
        return eos
    fits = [i for i, b in enumerate(vocab) if b and rest.startswith(b) and allowed(i)]
    assert fits, f"the grammar refuses every token spelling {rest[:20]!r}"
    return max(fits, key=lambda i: len(vocab[i]))


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    for vocab_name, path in VOCABS.items():
        tokenizer = Tokenizer.from_dir(path)
        for name, build in (("xgrammar", _xgrammar), ("llguidance", _llguidance)):
            try:
                row = measure(name, tokenizer, build)
            except AssertionError as e:  # a path the engine refuses: report it, go on
                row = {"engine": name, "failed": str(e)}
            logger.info("%-12s V=%5d %s", vocab_name, tokenizer.vocab_size, "  ".join(
                f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
