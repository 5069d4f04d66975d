"""Run one request through the engine and turn cumulative outputs into per-choice deltas.

The engine reports cumulative text; `GenerationRun` emits only what is new, holding back a
trailing U+FFFD (an incomplete UTF-8 sequence that the next token completes) until the choice
finishes, so the joined deltas equal the final text exactly. It also measures TTFT and
inter-token latency, and records them into the metrics sink it is given. `results()` is what a
run leaves behind to store, a run that was stopped early (the client went away) included.
"""
from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

import anyio

from app.serving.engine_client import EngineClient
from shared import CompletionOutput, Logprob, RequestOutput, SamplingParams


class LatencySink(Protocol):
    def observe_ttft(self, model_id: str, seconds: float) -> None: ...
    def observe_inter_token(self, model_id: str, seconds: float, num_tokens: int) -> None: ...


@dataclass(slots=True)
class ChoiceDelta:
    index: int
    text: str
    token_ids: list[int]
    logprobs: list[dict[int, Logprob]] | None
    finish_reason: str | None  # set on the choice's last delta


ABORT = "abort"  # finish_reason of a choice stopped before the engine finished it


@dataclass(slots=True)
class ChoiceResult:
    index: int
    text: str  # the whole answer, or for a stopped one the text emitted before the stop
    num_tokens: int
    finish_reason: str  # the engine's ("stop", "length"), or ABORT


@dataclass(slots=True)
class _ChoiceState:
    num_chars_sent: int = 0
    num_tokens_sent: int = 0
    finished: bool = False


@dataclass(slots=True)
class GenerationRun:
    engine: EngineClient
    model_id: str
    prompt_token_ids: list[int]
    params: SamplingParams
    request_id: str
    metrics: LatencySink | None = None
    priority: int = 0  # lower is admitted first (app/api/priority.py)
    final: RequestOutput | None = None
    ttft_s: float | None = None
    latency_s: float | None = None
    _choices: dict[int, _ChoiceState] = field(default_factory=dict)
    _last_token_time: float | None = None

    async def deltas(self) -> AsyncIterator[list[ChoiceDelta]]:
        """Yields the new deltas after each engine step; raises EngineBusyError before any."""
        start = time.perf_counter()
        stream = self.engine.generate(self.prompt_token_ids, self.params, self.request_id,
                                      priority=self.priority)
        try:
            async for output in stream:
                self.final = output
                batch = [d for d in map(self._delta, output.outputs) if d is not None]
                self._observe(batch, start)
                if batch:
                    yield batch
        finally:
            with anyio.CancelScope(shield=True):  # closing aborts the request in the engine
                await stream.aclose()
            self.latency_s = time.perf_counter() - start

    async def run(self) -> RequestOutput:
        """Generate to the end without streaming; the final cumulative output."""
        async for _ in self.deltas():
            pass
        assert self.final is not None, "engine finished without output"
        return self.final

    def results(self) -> list[ChoiceResult]:
        """Each choice as it stands, by index: finished ones as the engine ended them, the rest
        (stopped early) with the text emitted so far and finish_reason ABORT. Empty before the
        engine's first output."""
        if self.final is None:
            return []
        return [self._result(o) for o in sorted(self.final.outputs, key=lambda o: o.index)]

    def _result(self, output: CompletionOutput) -> ChoiceResult:
        if output.finish_reason is not None:
            return ChoiceResult(output.index, output.text, len(output.token_ids),
                                output.finish_reason)
        state = self._choices.get(output.index, _ChoiceState())
        return ChoiceResult(output.index, output.text[:state.num_chars_sent],
                            state.num_tokens_sent, ABORT)

    @property
    def completion_tokens(self) -> int:
        return sum(len(o.token_ids) for o in self.final.outputs) if self.final else 0

    def _delta(self, output: CompletionOutput) -> ChoiceDelta | None:
        state = self._choices.setdefault(output.index, _ChoiceState())
        if state.finished:
            return None
        finished = output.finish_reason is not None
        text = output.text if finished else output.text.rstrip("\ufffd")
        new_text = text[state.num_chars_sent:]
        new_ids = output.token_ids[state.num_tokens_sent:]
        if not new_text and not new_ids and not finished:
            return None
        logprobs = None
        if output.logprobs is not None:
            logprobs = output.logprobs[state.num_tokens_sent:len(output.token_ids)]
        state.num_chars_sent = max(state.num_chars_sent, len(text))
        state.num_tokens_sent = len(output.token_ids)
        state.finished = finished
        return ChoiceDelta(output.index, new_text, list(new_ids), logprobs,
                           output.finish_reason if finished else None)

    def _observe(self, batch: list[ChoiceDelta], start: float) -> None:
        num_tokens = sum(len(d.token_ids) for d in batch)
        if not num_tokens:
            return
        now = time.perf_counter()
        if self.ttft_s is None:
            self.ttft_s = now - start
            if self.metrics:
                self.metrics.observe_ttft(self.model_id, self.ttft_s)
        elif self.metrics and self._last_token_time is not None:
            self.metrics.observe_inter_token(self.model_id, now - self._last_token_time, num_tokens)
        self._last_token_time = now
