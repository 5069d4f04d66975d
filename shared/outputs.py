"""What the engine hands back: one `RequestOutput` per prompt, one `CompletionOutput` per sample."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Logprob:
    logprob: float
    rank: int | None = None  # 1 = most likely
    decoded_token: str | None = None


@dataclass(slots=True)
class CompletionOutput:
    index: int  # which of the request's n samples
    text: str
    token_ids: list[int]
    # One dict per generated token: token id -> Logprob (the chosen token plus the top-n), or None
    # when logprobs were not requested.
    logprobs: list[dict[int, Logprob]] | None = None
    finish_reason: str | None = None  # "stop", "length", "abort" or None while running
    stop_reason: int | str | None = None  # the stop string or token id that ended it

    def finished(self) -> bool:
        return self.finish_reason is not None


@dataclass(slots=True)
class RequestOutput:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput] = field(default_factory=list)
    finished: bool = False
    # Timings in seconds since the request arrived (None until known).
    first_token_latency: float | None = None
    num_cached_tokens: int = 0
    # With SamplingParams.prompt_logprobs: one entry per prompt token, None for the first (nothing
    # precedes it), as vLLM. Complete once the prompt is prefilled (the first sampled token).
    prompt_logprobs: list[dict[int, Logprob] | None] | None = None
