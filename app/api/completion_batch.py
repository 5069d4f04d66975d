"""A /v1/completions request's prompts, run as one response.

OpenAI takes a list of prompts and answers with one choice per prompt and sample, numbered prompt
index x n + sample index. Each prompt is its own engine request (continuous batching runs them
together) and its own stored exchange. With `echo`, each choice starts with its prompt: the text,
the token ids and, when logprobs are asked, the prompt tokens' log-probabilities (the first one
null, as vLLM returns them). With `max_tokens: 0` (echo only) the engine still generates one token,
as in vLLM, and the answer drops it.

Every prompt's first output is awaited before anything is yielded, so a prompt the engine refuses
(full queue, bad input) fails the whole request cleanly (429, 400) rather than mid-answer. This
module does not know JSON (that is `openai_format.CompletionFormat`) nor the store.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import anyio

from app.api.history import ExchangePlan
from app.serving.generation import ChoiceDelta, GenerationRun
from shared import CompletionOutput, Logprob, RequestOutput

_DONE = object()  # a prompt's stream ended


@dataclass(slots=True)
class PromptRun:
    run: GenerationRun
    text: str  # the prompt as text (what echo prepends); decoded for a token-id prompt
    plan: ExchangePlan  # where its exchange is stored


@dataclass(slots=True)
class CompletionChoices:
    """The batch's answer so far: choices numbered as OpenAI does, echo applied, and usage."""
    outputs: list[CompletionOutput]
    prompt_tokens: int
    completion_tokens: int  # generated tokens the answer shows (0 when echo only)
    cached_tokens: int


@dataclass(slots=True)
class EchoMode:
    echo: bool = False  # prepend each prompt to its choices
    echo_only: bool = False  # max_tokens 0: drop the one generated token


@dataclass
class CompletionBatch:
    prompts: list[PromptRun]
    n: int
    mode: EchoMode
    request_id: str
    model_id: str
    latency_s: float | None = None
    _echoed: set[int] = field(default_factory=set)  # choices whose prompt was streamed

    @property
    def final(self) -> CompletionChoices | None:
        """Every prompt's latest output as one answer; None before any prompt has output."""
        finals = [(i, p) for i, p in enumerate(self.prompts) if p.run.final is not None]
        if not finals:
            return None
        outputs = [self._choice(i, p, o) for i, p in finals for o in p.run.final.outputs]
        generated = 0 if self.mode.echo_only else sum(p.run.completion_tokens for _, p in finals)
        return CompletionChoices(
            outputs=sorted(outputs, key=lambda o: o.index),
            prompt_tokens=sum(len(p.run.final.prompt_token_ids) for _, p in finals),
            completion_tokens=generated,
            cached_tokens=sum(p.run.final.num_cached_tokens for _, p in finals))

    async def deltas(self) -> AsyncIterator[list[ChoiceDelta]]:
        """New deltas of all prompts as they come, renumbered and echoed; the first batch once
        every prompt has output. Raises what a prompt's run raised; closing stops every prompt."""
        start = time.perf_counter()
        queue: asyncio.Queue = asyncio.Queue()
        streams = [p.run.deltas() for p in self.prompts]
        tasks = [asyncio.create_task(_pump(i, s, queue)) for i, s in enumerate(streams)]
        waiting_first, held = set(range(len(streams))), []
        try:
            remaining = len(streams)
            while remaining:
                index, item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                waiting_first.discard(index)
                if item is _DONE:
                    remaining -= 1
                else:
                    held.extend(self._delta(index, delta) for delta in item)
                if held and not waiting_first:
                    yield held
                    held = []
        finally:
            with anyio.CancelScope(shield=True):  # closing aborts the requests in the engine
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                for stream in streams:
                    await stream.aclose()
            self.latency_s = time.perf_counter() - start

    def _choice(self, prompt_index: int, prompt: PromptRun,
                output: CompletionOutput) -> CompletionOutput:
        text, token_ids, logprobs = output.text, output.token_ids, output.logprobs
        if self.mode.echo_only:
            text, token_ids, logprobs = "", [], (None if logprobs is None else [])
        if self.mode.echo:
            text, token_ids, logprobs = _with_prompt(prompt, prompt.run.final, text, token_ids,
                                                     logprobs)
        return CompletionOutput(index=prompt_index * self.n + output.index, text=text,
                                token_ids=list(token_ids), logprobs=logprobs,
                                finish_reason=output.finish_reason, stop_reason=output.stop_reason)

    def _delta(self, prompt_index: int, delta: ChoiceDelta) -> ChoiceDelta:
        index = prompt_index * self.n + delta.index
        text, token_ids, logprobs = delta.text, delta.token_ids, delta.logprobs
        if self.mode.echo_only:
            text, token_ids, logprobs = "", [], (None if logprobs is None else [])
        if self.mode.echo and index not in self._echoed:
            self._echoed.add(index)
            prompt = self.prompts[prompt_index]
            text, token_ids, logprobs = _with_prompt(prompt, prompt.run.final, text, token_ids,
                                                     logprobs)
        return ChoiceDelta(index, text, list(token_ids), logprobs, delta.finish_reason)


def _with_prompt(prompt: PromptRun, output: RequestOutput, text: str, token_ids: list[int],
                 logprobs: list[dict[int, Logprob]] | None):
    """(text, token ids, logprobs) with the prompt in front. The prompt's logprobs are complete
    once the engine has any output for it (prefill precedes the first token)."""
    if logprobs is not None:
        prompt_logprobs = output.prompt_logprobs or [None] * len(output.prompt_token_ids)
        logprobs = [*prompt_logprobs, *logprobs]
    return prompt.text + text, [*output.prompt_token_ids, *token_ids], logprobs


async def _pump(index: int, stream: AsyncIterator[list[ChoiceDelta]], queue: asyncio.Queue) -> None:
    try:
        async for batch in stream:
            queue.put_nowait((index, batch))
        queue.put_nowait((index, _DONE))
    except Exception as e:  # noqa: BLE001 - handed to the consumer, which raises it
        queue.put_nowait((index, e))
