"""Structured outputs in the engine: compile a request's constraint into a grammar, keep one
matcher per sample, and mask each step's logits to the tokens that grammar allows.

The grammar engine is xgrammar. Measured against llguidance on this project's vocabularies
(`python -m benchmarks.grammar_engines`, nested schema, one CPU thread): per-token mask 1.3-2 us
median vs 13 us, the first mask 0.1 ms vs 11-13 s (llguidance builds its token trie on first
use), schema compile 2-30 ms vs 1-50 ms, and llguidance refused the token path a sentencepiece
vocabulary spells (it insists on canonical tokenization). It also gives EBNF grammars and
regexes, which vLLM's `guided_grammar` / `guided_regex` clients send.

Constrained and free rows share one sampler step: only the constrained rows get a bitmask (the
chip op `apply_token_bitmask`). This module knows nothing about HTTP or `response_format`: it takes
`shared.StructuredOutputsParams`. JSON is written compactly (no free whitespace between tokens).
"""
from __future__ import annotations

import json
import re
import threading
import weakref
from typing import TYPE_CHECKING

import torch

from chip import dispatch
from framework.engine.sequence import Sequence
from shared import StructuredOutputKind, StructuredOutputsParams, TokenizerLike

if TYPE_CHECKING:
    import xgrammar as xgr


def _xgr():
    """xgrammar, imported on the first structured request: importing it pulls in transformers,
    seconds that every server start would otherwise pay before it answers anything."""
    import xgrammar

    return xgrammar


_LABELS = {StructuredOutputKind.JSON: "JSON schema",
           StructuredOutputKind.JSON_OBJECT: "JSON format",
           StructuredOutputKind.REGEX: "regular expression",
           StructuredOutputKind.CHOICE: "choice list",
           StructuredOutputKind.GRAMMAR: "grammar",
           StructuredOutputKind.STRUCTURAL_TAG: "structural tag"}
_CPP_PREFIX = re.compile(r"^\[[\d:]+\] \S+:\d+: ")


class GrammarCompiler:
    """Compiles constraints against one tokenizer's vocabulary; compiled grammars are cached."""

    def __init__(self, tokenizer: TokenizerLike, vocab_size: int, eos_token_ids: list[int]):
        self._tokenizer, self.vocab_size = tokenizer, vocab_size
        self._eos_token_ids = list(eos_token_ids)
        self._compiler: xgr.GrammarCompiler | None = None  # built on first use (reads the vocab)
        self._lock = threading.Lock()

    def compile(self, spec: StructuredOutputsParams) -> xgr.CompiledGrammar:
        """ValueError (message without library noise) when the constraint cannot be compiled."""
        compiler = self._get_compiler()
        try:
            return _compile(compiler, spec)
        except (RuntimeError, ValueError, TypeError) as e:
            raise ValueError(f"invalid {_LABELS[spec.kind]}: {_clean(e)}") from e

    def _get_compiler(self) -> xgr.GrammarCompiler:
        with self._lock:
            if self._compiler is None:
                self._compiler = _shared_compiler(self._tokenizer, self.vocab_size,
                                                  self._eos_token_ids)
            return self._compiler


# Reading a vocabulary takes seconds for 50k tokens: engines over the same tokenizer object (a
# model swap back, LLM instances in one process) share one compiler and its grammar cache.
_COMPILERS: dict[tuple, tuple[weakref.ref, xgr.GrammarCompiler]] = {}
_COMPILERS_LOCK = threading.Lock()


def _shared_compiler(tokenizer: TokenizerLike, vocab_size: int,
                     eos_token_ids: list[int]) -> xgr.GrammarCompiler:
    key = (id(tokenizer), vocab_size, tuple(eos_token_ids))
    with _COMPILERS_LOCK:
        entry = _COMPILERS.get(key)
        if entry is not None and entry[0]() is tokenizer:
            return entry[1]
        vocab = token_bytes(tokenizer, vocab_size)
        info = _xgr().TokenizerInfo(vocab, _xgr().VocabType.RAW, vocab_size=vocab_size,
                                 stop_token_ids=list(eos_token_ids))
        compiler = _xgr().GrammarCompiler(info, max_threads=1)
        _COMPILERS[key] = (weakref.ref(tokenizer, lambda _: _COMPILERS.pop(key, None)), compiler)
        return compiler


class GrammarState:
    """One sample's position in its grammar: advanced with every token the sample takes."""

    def __init__(self, compiled: xgr.CompiledGrammar):
        self._compiled = compiled
        self._matcher = _xgr().GrammarMatcher(compiled)

    def fill_bitmask(self, bitmask: torch.Tensor, row: int) -> None:
        self._matcher.fill_next_token_bitmask(bitmask, row)

    def accept(self, token_id: int) -> bool:
        """Advance by one token; False when the grammar does not allow it (never, if masked)."""
        return self._matcher.accept_token(token_id)

    @property
    def terminated(self) -> bool:
        """The output is complete: the grammar accepted it and a stop token was taken."""
        return self._matcher.is_terminated()

    def fresh(self) -> GrammarState:
        """A new state at the grammar's start (for a forked sample)."""
        return GrammarState(self._compiled)


def check_constraint(spec: StructuredOutputsParams) -> None:
    """Vocabulary-free check (ValueError): does the schema / regex / grammar parse at all?"""
    try:
        _grammar(spec)
    except (RuntimeError, ValueError, TypeError) as e:
        raise ValueError(f"invalid {_LABELS[spec.kind]}: {_clean(e)}") from e


def apply_grammar_mask(logits: torch.Tensor, seqs: list[Sequence],
                       fallback: torch.Tensor) -> torch.Tensor:
    """logits (N, V) -> the constrained rows masked to their grammar's next tokens. A row left with
    no token at all (min_tokens forbids the stop token the grammar now requires) is masked from
    `fallback` (the raw logits) instead: the grammar wins."""
    rows = [i for i, s in enumerate(seqs) if s.grammar is not None]
    bitmask = torch.full((len(rows), (logits.shape[1] + 31) // 32), -1, dtype=torch.int32)
    for j, i in enumerate(rows):
        seqs[i].grammar.fill_bitmask(bitmask, j)
    index = torch.tensor(rows, dtype=torch.long, device=logits.device)
    bitmask = bitmask.to(logits.device)
    op = dispatch("apply_token_bitmask", logits.device.type)
    masked = op(logits, bitmask, index)
    dead = torch.isneginf(masked.index_select(0, index)).all(dim=1)
    if bool(dead.any()):
        again = op(fallback, bitmask[dead], index[dead])
        masked[index[dead]] = again[index[dead]]
    return masked


def token_bytes(tokenizer: TokenizerLike, vocab_size: int) -> list[bytes]:
    """Per token id, its bytes in decoded text (b"" for special tokens and ids past the tokenizer).
    Uses the tokenizer's own `token_bytes()` when it has one (ours does); otherwise decodes each
    id alone, and a token that is no whole character alone (a lone UTF-8 byte) is never allowed,
    since its bytes cannot be known that way."""
    own = getattr(tokenizer, "token_bytes", None)
    if own is not None:
        vocab = list(own())
    else:
        texts = [tokenizer.decode([i], skip_special_tokens=True)
                 for i in range(tokenizer.vocab_size)]
        vocab = [b"" if "\ufffd" in text else text.encode("utf-8") for text in texts]
    vocab = vocab[:vocab_size]
    return vocab + [b""] * (vocab_size - len(vocab))


def _compile(compiler: xgr.GrammarCompiler, spec: StructuredOutputsParams) -> xgr.CompiledGrammar:
    return compiler.compile_grammar(_grammar(spec))


def _grammar(spec: StructuredOutputsParams) -> xgr.Grammar:
    kind = spec.kind
    if kind in (StructuredOutputKind.JSON, StructuredOutputKind.JSON_OBJECT):
        schema = spec.schema_text() if kind is StructuredOutputKind.JSON else '{"type": "object"}'
        grammar = _xgr().Grammar.from_json_schema(schema, **_json_options(spec))
        return _xgr().Grammar.from_ebnf(repair_json_grammar(str(grammar)))
    if kind is StructuredOutputKind.REGEX:
        return _xgr().Grammar.from_regex(spec.regex)
    if kind is StructuredOutputKind.CHOICE:
        alternatives = " | ".join(json.dumps(c, ensure_ascii=False) for c in spec.choice)
        return _xgr().Grammar.from_ebnf(f"root ::= {alternatives}")
    if kind is StructuredOutputKind.STRUCTURAL_TAG:
        tag = spec.structural_tag
        tag = json.loads(tag) if isinstance(tag, str) else tag
        return _xgr().Grammar.from_structural_tag(json.dumps(_compact_json_contents(tag)))
    return _xgr().Grammar.from_ebnf(spec.grammar)


def _compact_json_contents(node):
    """A structural tag with every `json_schema` content replaced by the grammar this module
    writes for a JSON schema (compact, digit runs capped): xgrammar's own structural-tag JSON
    allows free whitespace, which small models loop on."""
    if isinstance(node, list):
        return [_compact_json_contents(item) for item in node]
    if not isinstance(node, dict):
        return node
    if node.get("type") == "json_schema" and node.get("style", "json") == "json":
        schema = json.dumps(node.get("json_schema", True))
        grammar = _xgr().Grammar.from_json_schema(schema, any_whitespace=False, strict_mode=True)
        return {"type": "grammar", "grammar": repair_json_grammar(str(grammar))}
    return {key: _compact_json_contents(value) for key, value in node.items()}


def _json_options(spec: StructuredOutputsParams) -> dict:
    # Always compact (", " and ": "), as vLLM's disable_any_whitespace: with free whitespace the
    # small models served here spent tokens on newlines and could loop on them until max_tokens.
    return {"any_whitespace": False, "strict_mode": True}


# xgrammar's rules for a JSON number the schema does not bound: digits repeat without limit, so a
# model could write digits until max_tokens and never close the object. Cap them at what a double
# holds (17 significant digits, a 3-digit exponent); bounded numbers (minimum/maximum) stay as
# they are.
_UNBOUNDED_NUMBER_RULES = {
    "basic_integer ::=": ("[0-9]*", "[0-9]{0, 16}"),
    "basic_number_2 ::=": ("[0-9]*", "[0-9]{0, 16}"),
    "basic_number_3 ::=": ("basic_number_digits{1, -1}", "basic_number_digits{1, 17}"),
    "basic_number_5 ::=": ("basic_number_digits{1, -1}", "basic_number_digits{1, 3}"),
}


# xgrammar 0.2.8 writes a string with minLength/maxLength as a run of `[^"\\\r\n]`, which lets
# control characters through (JSON forbids them raw: such output did not parse). Exclude them.
_LOOSE_STRING_CHAR = ' ::= (([^\\"\\\\\\r\\n]))'
_JSON_STRING_CHAR = ' ::= (([^\\0-\\x1f\\"\\\\]))'


def repair_json_grammar(ebnf: str) -> str:
    """xgrammar's JSON-schema grammar text with numbers' digit runs capped (see
    _UNBOUNDED_NUMBER_RULES) and length-bounded strings kept to JSON's characters."""
    lines = ebnf.splitlines()
    for i, line in enumerate(lines):
        for head, (unbounded, bounded) in _UNBOUNDED_NUMBER_RULES.items():
            if line.startswith(head):
                lines[i] = line.replace(unbounded, bounded)
        if line.endswith(_LOOSE_STRING_CHAR):
            lines[i] = line[:-len(_LOOSE_STRING_CHAR)] + _JSON_STRING_CHAR
    return "\n".join(lines)


def _clean(error: Exception) -> str:
    """xgrammar's C++ messages start with a timestamp and a source location; drop them."""
    return _CPP_PREFIX.sub("", str(error).strip().splitlines()[0] if str(error).strip() else "")
