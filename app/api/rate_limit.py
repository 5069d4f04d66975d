"""Per-key rate limits (requests and tokens per minute) and failed-login throttling, in memory.

Windows come from the `limits` package (maintained, used by Flask-Limiter and SlowAPI, with an
in-memory backend and a Redis one should several server processes ever share limits):
- requests and tokens: a sliding-window counter (two counters per key, so a token budget of
  100k/min costs no more memory than 10/min);
- failed logins: a moving window (exact, and the counts are small).

A request's token cost is known before it runs only as an estimate, the way OpenAI meters its own
limits: the prompt's characters / 4 plus the completion tokens it may generate (max_tokens x n, or
the rest of the model's context when unset). The cost is charged on admission; a request larger
than the whole budget is admitted into an empty window and uses all of it, so it cannot wait
forever. Retry-After is when the current window ends (the earliest moment there may be room).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter, SlidingWindowCounterRateLimiter

CHARS_PER_TOKEN = 4


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request was not admitted, and when to try again."""
    limit: str  # "requests" or "tokens"
    per_minute: int
    retry_after_s: int


class KeyRateLimits:
    """Requests and tokens per minute per identity (an API key id, or a user for sessions)."""

    def __init__(self, requests_per_minute: int | None, tokens_per_minute: int | None) -> None:
        self._limiter = SlidingWindowCounterRateLimiter(MemoryStorage())
        per_minute = lambda amount: RateLimitItemPerMinute(amount) if amount else None  # noqa: E731
        self._requests, self._tokens = per_minute(requests_per_minute), per_minute(tokens_per_minute)

    @property
    def limits_tokens(self) -> bool:
        return self._tokens is not None

    def admit(self, identity: str, token_cost: int = 0) -> Refusal | None:
        """Charge one request (and `token_cost` tokens) to `identity`; None when admitted."""
        cost = min(token_cost, self._tokens.amount) if self._tokens is not None else 0
        for name, item, amount in (("requests", self._requests, 1), ("tokens", self._tokens, cost)):
            if item is not None and amount > 0 and not self._limiter.test(item, identity,
                                                                          cost=amount):
                return Refusal(name, item.amount, _retry_after_s(self._limiter, item, identity))
        for item, amount in ((self._requests, 1), (self._tokens, cost)):
            if item is not None and amount > 0:
                self._limiter.hit(item, identity, cost=amount)
        return None


class LoginThrottle:
    """At most `max_failures` failed logins per (username, client address) per window."""

    def __init__(self, max_failures: int, window_s: int) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._item = RateLimitItemPerSecond(max_failures, window_s)

    def retry_after_s(self, username: str, client: str) -> int | None:
        """Seconds to wait when this pair has used up its failures; None when it may try."""
        ids = (username.lower(), client)
        if self._limiter.test(self._item, *ids):
            return None
        return _retry_after_s(self._limiter, self._item, *ids)

    def failed(self, username: str, client: str) -> None:
        self._limiter.hit(self._item, username.lower(), client)

    def succeeded(self, username: str, client: str) -> None:
        self._limiter.clear(self._item, username.lower(), client)


def requested_tokens(payload: dict, max_model_len: int | None) -> int:
    """Estimated tokens a chat or completion request may use: prompt characters / 4 plus
    max_tokens (or max_completion_tokens) x n; without a maximum, the rest of the context."""
    prompt_chars = sum(len(text) for text in _prompt_texts(payload))
    prompt_tokens = math.ceil(prompt_chars / CHARS_PER_TOKEN) + _prompt_token_ids(payload)
    limit = (payload.get("max_completion_tokens") or payload.get("max_tokens")
             or payload.get("max_output_tokens"))
    if not isinstance(limit, int) or limit <= 0:
        limit = max((max_model_len or 0) - prompt_tokens, 0)
    n = payload.get("n") if isinstance(payload.get("n"), int) and payload.get("n") > 0 else 1
    return prompt_tokens + limit * n


def _prompt_texts(payload: dict):
    prompt = payload.get("prompt")
    if isinstance(prompt, str):
        yield prompt
    elif isinstance(prompt, list):
        yield from (p for p in prompt if isinstance(p, str))
    for key in ("input", "instructions"):  # /v1/responses
        if isinstance(payload.get(key), str):
            yield payload[key]
    messages = payload.get("input") if isinstance(payload.get("input"), list) else []
    for message in [*(payload.get("messages") or []), *messages]:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            yield content
        elif isinstance(content, list):
            yield from (part.get("text", "") for part in content
                        if isinstance(part, dict) and isinstance(part.get("text"), str))


def _prompt_token_ids(payload: dict) -> int:
    """Completions may send the prompt as token ids (a list of ints, or a list of such lists)."""
    prompt = payload.get("prompt")
    if not isinstance(prompt, list):
        return 0
    return sum(1 if isinstance(p, int) else len(p) if isinstance(p, list) else 0 for p in prompt)


def _retry_after_s(limiter, item: RateLimitItem, *ids: str) -> int:
    reset_at = limiter.get_window_stats(item, *ids).reset_time
    return max(1, math.ceil(reset_at - time.time()))
