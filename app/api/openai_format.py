"""Engine outputs -> OpenAI JSON: chat and text completion objects, stream chunks, logprobs, usage.

With tools, a chat answer's calls become `message.tool_calls` (finish_reason "tool_calls",
content null when the answer is only calls) and stream as OpenAI's tool-call deltas.

Every object also carries the Flywheel extras `conversation_id`, `message_id`, `message_ids` and
`model_version` at its top level.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from app.api.completion_batch import CompletionChoices
from app.serving.generation import ChoiceDelta
from app.tool_calls import ToolCallStream
from app.tool_calls.parsing import ToolParser, message_from
from shared import CompletionOutput, Logprob, RequestOutput


@dataclass(slots=True)
class ResponseMeta:
    id: str  # chatcmpl-... / cmpl-...
    model_id: str  # the version that answers: the body's `model_version`, stored with the answer
    conversation_id: str | None = None
    message_ids: list[str] = field(default_factory=list)
    created: int = field(default_factory=lambda: int(time.time()))
    model_name: str | None = None  # what the client asked for (None: model_id)

    @property
    def model(self) -> str:
        """The body's `model`: the name the client asked for, as OpenAI clients expect (the
        public name keeps answering whichever version is behind it)."""
        return self.model_name or self.model_id

    def extras(self) -> dict:
        return {"conversation_id": self.conversation_id,
                "message_id": self.message_ids[0] if self.message_ids else None,
                "message_ids": list(self.message_ids), "model_version": self.model_id}


def usage(output: RequestOutput) -> dict:
    completion_tokens = sum(len(o.token_ids) for o in output.outputs)
    prompt_tokens = len(output.prompt_token_ids)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": output.num_cached_tokens}}


class ChatFormat:
    object_name = "chat.completion"

    def __init__(self, meta: ResponseMeta, tokenizer, num_top_logprobs: int | None,
                 tool_parser: ToolParser | None = None) -> None:
        self.meta, self._tokenizer, self._num_top = meta, tokenizer, num_top_logprobs
        self._role_sent: set[int] = set()
        # with tools, answers are read for calls (app/tool_calls); one stream reader per choice
        self._tool_parser = tool_parser
        self._tool_streams: dict[int, ToolCallStream] = {}

    def response(self, output: RequestOutput) -> dict:
        choices = []
        for o in _ordered(output):
            message, has_calls = self._message(o.text)
            choices.append({"index": o.index, "message": message,
                            "logprobs": self._logprobs(o.token_ids, o.logprobs),
                            "finish_reason": _with_calls(_finish_reason(o), has_calls)})
        return {"id": self.meta.id, "object": self.object_name, "created": self.meta.created,
                "model": self.meta.model, "choices": choices, "usage": usage(output),
                "system_fingerprint": None, **self.meta.extras()}

    def chunk(self, delta: ChoiceDelta, include_usage: bool) -> dict:
        content, has_calls = self._delta(delta)
        if delta.index not in self._role_sent:
            self._role_sent.add(delta.index)
            content = {"role": "assistant", **content}
        choice = {"index": delta.index, "delta": content,
                  "logprobs": self._logprobs(delta.token_ids, delta.logprobs),
                  "finish_reason": _with_calls(_finish_reason_of(delta.finish_reason), has_calls)}
        return self._chunk([choice], include_usage)

    def _message(self, text: str) -> tuple[dict, bool]:
        """A whole answer's message, and whether it calls tools."""
        if self._tool_parser is None:
            return {"role": "assistant", "content": text, "refusal": None}, False
        parsed = message_from(self._tool_parser, text)
        message = {"role": "assistant", "content": parsed.content, "refusal": None}
        if parsed.tool_calls:
            message["tool_calls"] = [call.to_openai() for call in parsed.tool_calls]
        return message, bool(parsed.tool_calls)

    def _delta(self, delta: ChoiceDelta) -> tuple[dict, bool]:
        """A stream delta's body, and whether its choice has called tools so far. With tools,
        text that may start a call is held back until it is clear what it is."""
        if self._tool_parser is None:
            return {"content": delta.text}, False
        stream = self._tool_streams.setdefault(delta.index, ToolCallStream(self._tool_parser))
        piece = stream.feed(delta.text, final=delta.finish_reason is not None)
        body: dict = {"content": piece.content} if piece.content else {}
        if piece.tool_calls:
            body["tool_calls"] = piece.tool_calls
        return body, stream.has_calls

    def usage_chunk(self, output: RequestOutput) -> dict:
        return {**self._chunk([], True), "usage": usage(output)}

    def _chunk(self, choices: list[dict], include_usage: bool) -> dict:
        body = {"id": self.meta.id, "object": "chat.completion.chunk", "created": self.meta.created,
                "model": self.meta.model, "system_fingerprint": None, "choices": choices,
                **self.meta.extras()}
        if include_usage:
            body["usage"] = None
        return body

    def _logprobs(self, token_ids: list[int], logprobs: list[dict[int, Logprob]] | None) -> dict | None:
        if self._num_top is None or logprobs is None:
            return None
        content = []
        for token_id, alternatives in zip(token_ids, logprobs):
            chosen = alternatives.get(token_id) or Logprob(float("-inf"))
            top = _top(alternatives, self._num_top)
            content.append({**self._entry(token_id, chosen),
                            "top_logprobs": [self._entry(t, lp) for t, lp in top]})
        return {"content": content, "refusal": None}

    def _entry(self, token_id: int, logprob: Logprob) -> dict:
        text = _token_text(self._tokenizer, token_id, logprob)
        return {"token": text, "logprob": _finite(logprob.logprob), "bytes": list(text.encode())}


class CompletionFormat:
    """Text completions from a `CompletionChoices` (choices already numbered and echoed). With
    echo, a prompt token's logprob entry may be None (the first token): its logprob and top
    alternatives are then null, as vLLM returns them."""
    object_name = "text_completion"

    def __init__(self, meta: ResponseMeta, tokenizer, num_top_logprobs: int | None) -> None:
        self.meta, self._tokenizer, self._num_top = meta, tokenizer, num_top_logprobs
        self._text_offsets: dict[int, int] = {}

    def response(self, output: CompletionChoices) -> dict:
        self._text_offsets.clear()
        choices = [{"index": o.index, "text": o.text,
                    "logprobs": self._logprobs(o.index, o.token_ids, o.logprobs),
                    "finish_reason": _finish_reason(o)} for o in output.outputs]
        return {"id": self.meta.id, "object": self.object_name, "created": self.meta.created,
                "model": self.meta.model, "choices": choices,
                "usage": completion_usage(output), "system_fingerprint": None,
                **self.meta.extras()}

    def chunk(self, delta: ChoiceDelta, include_usage: bool) -> dict:
        choice = {"index": delta.index, "text": delta.text,
                  "logprobs": self._logprobs(delta.index, delta.token_ids, delta.logprobs),
                  "finish_reason": _finish_reason_of(delta.finish_reason)}
        body = {"id": self.meta.id, "object": self.object_name, "created": self.meta.created,
                "model": self.meta.model, "system_fingerprint": None, "choices": [choice],
                **self.meta.extras()}
        if include_usage:
            body["usage"] = None
        return body

    def usage_chunk(self, output: CompletionChoices) -> dict:
        return {"id": self.meta.id, "object": self.object_name, "created": self.meta.created,
                "model": self.meta.model, "system_fingerprint": None, "choices": [],
                "usage": completion_usage(output), **self.meta.extras()}

    def _logprobs(self, index: int, token_ids: list[int],
                  logprobs: list[dict[int, Logprob] | None] | None) -> dict | None:
        if self._num_top is None or logprobs is None:
            return None
        tokens, token_logprobs, tops, offsets = [], [], [], []
        offset = self._text_offsets.get(index, 0)
        for token_id, alternatives in zip(token_ids, logprobs):
            text, logprob, top = self._token_entry(token_id, alternatives)
            tokens.append(text)
            token_logprobs.append(logprob)
            tops.append(top)
            offsets.append(offset)
            offset += len(text)
        self._text_offsets[index] = offset
        return {"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": tops,
                "text_offset": offsets}

    def _token_entry(self, token_id: int, alternatives: dict[int, Logprob] | None
                     ) -> tuple[str, float | None, dict[str, float] | None]:
        """(token text, its logprob, top alternatives); logprob and top are None for an echoed
        first prompt token, which nothing precedes."""
        if alternatives is None:
            return self._tokenizer.decode([token_id], skip_special_tokens=False), None, None
        chosen = alternatives.get(token_id) or Logprob(float("-inf"))
        top = {_token_text(self._tokenizer, t, lp): _finite(lp.logprob)
               for t, lp in _top(alternatives, self._num_top)}
        return _token_text(self._tokenizer, token_id, chosen), _finite(chosen.logprob), top


def completion_usage(output: CompletionChoices) -> dict:
    return {"prompt_tokens": output.prompt_tokens, "completion_tokens": output.completion_tokens,
            "total_tokens": output.prompt_tokens + output.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": output.cached_tokens}}


def _ordered(output: RequestOutput) -> list[CompletionOutput]:
    return sorted(output.outputs, key=lambda o: o.index)


def _finish_reason(output: CompletionOutput) -> str | None:
    return _finish_reason_of(output.finish_reason)


def _with_calls(reason: str | None, has_calls: bool) -> str | None:
    # OpenAI ends an answer that calls tools with "tool_calls" (a cut-off one stays "length")
    return "tool_calls" if has_calls and reason == "stop" else reason


def _finish_reason_of(reason: str | None) -> str | None:
    # OpenAI knows "stop" and "length"; an engine-side abort is reported as "stop".
    return "stop" if reason == "abort" else reason


def _top(alternatives: dict[int, Logprob], k: int) -> list[tuple[int, Logprob]]:
    ranked = sorted(alternatives.items(),
                    key=lambda item: (item[1].rank if item[1].rank is not None else 1 << 30,
                                      -item[1].logprob))
    return ranked[:k]


def _token_text(tokenizer, token_id: int, logprob: Logprob) -> str:
    if logprob.decoded_token is not None:
        return logprob.decoded_token
    return tokenizer.decode([token_id], skip_special_tokens=False)


def _finite(value: float) -> float:
    return value if value > -1e30 else -9999.0  # JSON has no -inf; OpenAI uses -9999.0
