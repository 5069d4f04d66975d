"""Speculative decoding settings, with vLLM's `speculative_config` key names.

`LLM(model=DIR, speculative_config={"method": "ngram", "num_speculative_tokens": 4,
"prompt_lookup_max": 3})` proposes from the request's own tokens (prompt lookup);
`{"model": DRAFT_DIR, "num_speculative_tokens": 4}` proposes with a smaller model. The draft
model is loaded by the entry point (the engine is handed a model, never a path).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum


class SpeculativeMethod(str, Enum):
    NGRAM = "ngram"
    DRAFT_MODEL = "draft_model"


@dataclass(slots=True)
class SpeculativeConfig:
    num_speculative_tokens: int  # k: tokens proposed per step; a verified row yields 1..k+1 tokens
    method: SpeculativeMethod | str | None = None  # None: "draft_model" if `model` is set, else "ngram"
    model: str | None = None  # the draft model's directory (draft_model only)
    prompt_lookup_max: int = 4  # longest suffix n-gram matched against the request's tokens (ngram)
    prompt_lookup_min: int = 1  # shortest one tried before giving up on a proposal (ngram)
    # Speculate only while at most this many sequences run (vLLM's name): a big batch is compute
    # bound already, and verifying drafts there costs more than it saves. None: always.
    disable_by_batch_size: int | None = None
    # Whether a request that says nothing (SamplingParams.speculative None) speculates.
    enable_by_default: bool = True

    def __post_init__(self) -> None:
        if self.method is None:
            self.method = SpeculativeMethod.DRAFT_MODEL if self.model else SpeculativeMethod.NGRAM
        try:
            self.method = SpeculativeMethod(self.method)
        except ValueError as e:
            raise ValueError(f"speculative_config.method must be 'ngram' or 'draft_model', "
                             f"got {self.method!r}") from e
        _check(isinstance(self.num_speculative_tokens, int) and 1 <= self.num_speculative_tokens <= 32,
               f"speculative_config.num_speculative_tokens must be in [1, 32], "
               f"got {self.num_speculative_tokens!r}")
        if self.method == SpeculativeMethod.DRAFT_MODEL:
            _check(isinstance(self.model, str) and bool(self.model),
                   "speculative_config.model (the draft model's directory) is required for draft_model")
        else:
            _check(self.model is None, "speculative_config.model is only for method 'draft_model'")
        _check(isinstance(self.prompt_lookup_min, int) and isinstance(self.prompt_lookup_max, int)
               and 1 <= self.prompt_lookup_min <= self.prompt_lookup_max,
               "speculative_config needs 1 <= prompt_lookup_min <= prompt_lookup_max, got "
               f"{self.prompt_lookup_min!r} and {self.prompt_lookup_max!r}")
        _check(self.disable_by_batch_size is None
               or (isinstance(self.disable_by_batch_size, int) and self.disable_by_batch_size >= 1),
               f"speculative_config.disable_by_batch_size must be a positive int, "
               f"got {self.disable_by_batch_size!r}")

    @classmethod
    def from_dict(cls, options: dict) -> SpeculativeConfig:
        """From vLLM-style keys; unknown keys are a ValueError naming them."""
        if not isinstance(options, dict):
            raise ValueError(f"speculative_config must be a dict, got {type(options).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(options) - known
        if unknown:
            raise ValueError(f"unknown speculative_config key(s) {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(sorted(known))}")
        if "num_speculative_tokens" not in options:
            raise ValueError("speculative_config.num_speculative_tokens is required")
        return cls(**options)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)
