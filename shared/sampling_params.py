"""How one request wants its tokens chosen. Mirrors vLLM's `SamplingParams` field names.

Two per-request fields are not about sampling: `cache_salt` (vLLM's request-level field of that
name) and `skip_prefix_cache`. They ride here because this is the one per-request contract that
reaches the engine from every entry point (the API, `LLM`, the CLI).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from shared.structured_outputs import StructuredOutputsParams

_MAX_TOKENS_LIMIT = 1 << 20  # anything above this is a typo, not a request
_MAX_N = 128
MAX_CACHE_SALT_CHARS = 4096  # the API allows far less; the server may prepend a tenant id


@dataclass(slots=True)
class SamplingParams:
    n: int = 1
    temperature: float = 1.0  # 0 means greedy
    top_p: float = 1.0
    top_k: int = -1  # -1 (or 0) disables top-k
    min_p: float = 0.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    max_tokens: int | None = 16  # None: up to the model's context
    min_tokens: int = 0
    ignore_eos: bool = False
    logprobs: int | None = None  # number of top alternatives to return per token (0 = chosen only)
    prompt_logprobs: int | None = None  # top alternatives per prompt token (0 = the token only)
    # token id -> added to its logit before sampling, in [-100, 100] (OpenAI's logit_bias);
    # logprobs stay those of the raw distribution
    logit_bias: dict[int, float] | None = None
    skip_special_tokens: bool = True
    # Prefix-cache isolation: blocks are only shared between requests with the same salt (None is
    # a salt of its own). Kept out of repr so logs never show it.
    cache_salt: str | None = field(default=None, repr=False)
    skip_prefix_cache: bool = False  # neither reuse cached blocks nor offer this request's
    # the output must match this (JSON schema, regex, choice, grammar); vLLM's field name
    structured_outputs: StructuredOutputsParams | None = None
    # speculative decoding for this request: None follows the engine's default; False never;
    # True asks for it (a ValueError at admission if the engine has no speculative_config)
    speculative: bool | None = None

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            self.stop = [self.stop]
        self.stop = list(self.stop or [])
        self.stop_token_ids = list(self.stop_token_ids or [])
        _check(isinstance(self.n, int) and 1 <= self.n <= _MAX_N, f"n must be in [1, {_MAX_N}], got {self.n!r}")
        _check(self.temperature >= 0.0 and self.temperature <= 100.0,
               f"temperature must be in [0, 100], got {self.temperature}")
        _check(0.0 < self.top_p <= 1.0, f"top_p must be in (0, 1], got {self.top_p}")
        _check(isinstance(self.top_k, int) and (self.top_k == -1 or self.top_k >= 0),
               f"top_k must be -1 (disabled) or >= 0, got {self.top_k!r}")
        _check(0.0 <= self.min_p <= 1.0, f"min_p must be in [0, 1], got {self.min_p}")
        _check(-2.0 <= self.presence_penalty <= 2.0,
               f"presence_penalty must be in [-2, 2], got {self.presence_penalty}")
        _check(-2.0 <= self.frequency_penalty <= 2.0,
               f"frequency_penalty must be in [-2, 2], got {self.frequency_penalty}")
        _check(0.0 < self.repetition_penalty <= 10.0,
               f"repetition_penalty must be in (0, 10], got {self.repetition_penalty}")
        if self.max_tokens is not None:
            _check(isinstance(self.max_tokens, int) and 1 <= self.max_tokens <= _MAX_TOKENS_LIMIT,
                   f"max_tokens must be in [1, {_MAX_TOKENS_LIMIT}], got {self.max_tokens!r}")
        _check(isinstance(self.min_tokens, int) and self.min_tokens >= 0,
               f"min_tokens must be >= 0, got {self.min_tokens!r}")
        if self.max_tokens is not None:
            _check(self.min_tokens <= self.max_tokens,
                   f"min_tokens ({self.min_tokens}) must not exceed max_tokens ({self.max_tokens})")
        for name in ("logprobs", "prompt_logprobs"):
            value = getattr(self, name)
            _check(value is None or (isinstance(value, int) and 0 <= value <= 20),
                   f"{name} must be None or in [0, 20], got {value!r}")
        _check(all(isinstance(s, str) and s for s in self.stop), "stop strings must be non-empty strings")
        _check(all(isinstance(t, int) and t >= 0 for t in self.stop_token_ids),
               "stop_token_ids must be non-negative integers")
        _check(self.seed is None or isinstance(self.seed, int), f"seed must be an int, got {self.seed!r}")
        _check_logit_bias(self.logit_bias)
        _check(isinstance(self.skip_prefix_cache, bool),
               f"skip_prefix_cache must be a bool, got {self.skip_prefix_cache!r}")
        _check_cache_salt(self.cache_salt)
        _check(self.structured_outputs is None
               or isinstance(self.structured_outputs, StructuredOutputsParams),
               "structured_outputs must be a StructuredOutputsParams")
        _check(self.speculative is None or isinstance(self.speculative, bool),
               f"speculative must be None or a bool, got {self.speculative!r}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def _check_logit_bias(bias: dict[int, float] | None) -> None:
    if bias is None:
        return
    _check(isinstance(bias, dict), f"logit_bias must be a dict of token id -> bias, got {bias!r}")
    for token_id, value in bias.items():
        _check(isinstance(token_id, int) and not isinstance(token_id, bool) and token_id >= 0,
               f"logit_bias keys must be non-negative token ids, got {token_id!r}")
        _check(isinstance(value, (int, float)) and -100.0 <= value <= 100.0,
               f"logit_bias values must be in [-100, 100], got {value!r} for token {token_id}")


def _check_cache_salt(salt: str | None) -> None:
    if salt is None:
        return
    _check(isinstance(salt, str) and 1 <= len(salt) <= MAX_CACHE_SALT_CHARS,
           f"cache_salt must be None or a string of 1 to {MAX_CACHE_SALT_CHARS} characters")
    try:  # the block manager hashes its UTF-8 bytes; a lone surrogate has none
        salt.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError("cache_salt must be valid Unicode (no lone surrogates)") from e


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)
