"""Engine outputs -> OpenAI Responses API objects: the response, and its typed stream events.

A stream is the event sequence OpenAI sends for one text answer:

    response.created, response.in_progress, response.output_item.added,
    response.content_part.added, response.output_text.delta (one per engine step with new text),
    response.output_text.done, response.content_part.done, response.output_item.done,
    response.completed (or response.incomplete when max_output_tokens cut the answer)

each as `event: <type>` + `data: <json>` with an increasing `sequence_number`, and no `[DONE]`.
With tools, the items come at the end instead (see `ResponsesFormat`); a function call is
output_item.added, function_call_arguments.delta / .done, output_item.done.
The responder (`app.api.openai_responder`) drives it like a chat stream: `chunk()` per delta,
`usage_chunk()` once at the end (the format is used with include_usage on), `sse()` frames.
"""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field

from app.serving.generation import ChoiceDelta
from app.tool_calls import ToolPlan
from shared import RequestOutput


@dataclass(slots=True)
class ResponseEcho:
    """What a response object carries besides its output: ids and the request's settings."""
    id: str  # resp_...
    message_id: str  # msg_...: the output message item's id (and the stored answer's)
    model_id: str  # the version that answers: `model_version`, stored with the answer
    conversation_id: str | None
    instructions: str | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    previous_response_id: str | None = None
    store: bool = True
    text_format: dict = field(default_factory=lambda: {"type": "text"})
    metadata: dict = field(default_factory=dict)
    user: str | None = None
    created_at: int = field(default_factory=lambda: int(time.time()))
    model_name: str | None = None  # what the client asked for (None: model_id), as on chat
    tools: list = field(default_factory=list)  # as the request sent them
    tool_choice: str | dict = "auto"
    parallel_tool_calls: bool = True


def response_usage(input_tokens: int, output_tokens: int, cached_tokens: int = 0) -> dict:
    return {"input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": cached_tokens, "cache_write_tokens": 0},
            "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens}


def response_object(echo: ResponseEcho, *, status: str, output: list[dict],
                    usage: dict | None) -> dict:
    return {
        "id": echo.id, "object": "response", "created_at": echo.created_at, "status": status,
        "background": False, "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": echo.instructions, "max_output_tokens": echo.max_output_tokens,
        "max_tool_calls": None, "model": echo.model_name or echo.model_id, "output": output,
        "parallel_tool_calls": echo.parallel_tool_calls,
        "previous_response_id": echo.previous_response_id,
        "reasoning": {"effort": None, "summary": None}, "service_tier": "default",
        "store": echo.store, "temperature": echo.temperature,
        "text": {"format": echo.text_format}, "tool_choice": echo.tool_choice,
        "tools": echo.tools, "top_p": echo.top_p, "truncation": "disabled", "usage": usage,
        "user": echo.user, "metadata": echo.metadata,
        # Flywheel extras, as on chat completions
        "conversation_id": echo.conversation_id, "model_version": echo.model_id,
    }


def status_of(finish_reason: str | None) -> str:
    return "incomplete" if finish_reason == "length" else "completed"


def message_item(echo: ResponseEcho, text: str, status: str) -> dict:
    return {"id": echo.message_id, "type": "message", "status": status, "role": "assistant",
            "content": [_text_part(text)]}


class ResponsesFormat:
    """Without tools the answer streams as it is generated. With tools it is read for calls
    once finished (a call is only known whole), so its items are sent at the end: a message item
    for any text, a `function_call` item per call."""
    stream_end = ""  # the Responses API ends with response.completed, not [DONE]

    def __init__(self, echo: ResponseEcho, tools: ToolPlan | None = None) -> None:
        self.echo = echo
        self._tools = tools if tools is not None and tools.parser() is not None else None
        self._sequence_number = 0
        self._started = self._message_started = False

    # ---- non-streaming
    def response(self, output: RequestOutput) -> dict:
        answer = output.outputs[0]
        status = status_of(answer.finish_reason)
        return response_object(self.echo, status=status,
                               output=self._items(answer.text, _item_status(status)),
                               usage=_usage(output))

    # ---- streaming (lists of events, framed by `sse`)
    def chunk(self, delta: ChoiceDelta, include_usage: bool) -> list[dict]:
        events = self._start()
        if self._tools is None:
            events += self._message_start()
            if delta.text:
                events.append({"type": "response.output_text.delta", **self._part_ref(0),
                               "delta": delta.text, "logprobs": []})
        return events

    def usage_chunk(self, output: RequestOutput) -> list[dict]:
        answer = output.outputs[0]
        status = status_of(answer.finish_reason)
        items = self._items(answer.text, _item_status(status))
        events = self._start()
        for index, item in enumerate(items):
            events += self._item_events(index, item)
        final = response_object(self.echo, status=status, output=items, usage=_usage(output))
        return [*events, {"type": f"response.{status}", "response": final}]

    def sse(self, events: list[dict] | dict) -> str:
        if isinstance(events, dict):  # an error body from the responder
            error = events.get("error", {})
            events = [{"type": "error", "code": error.get("code"), "param": error.get("param"),
                       "message": error.get("message", "")}]
        framed = []
        for event in events:
            event["sequence_number"] = self._sequence_number
            self._sequence_number += 1
            body = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
            framed.append(f"event: {event['type']}\ndata: {body}\n\n")
        return "".join(framed)

    def _items(self, text: str, status: str) -> list[dict]:
        if self._tools is None:
            return [message_item(self.echo, text, status)]
        parsed = self._tools.parse(text)
        items = [message_item(self.echo, parsed.content, status)] if parsed.content else []
        return items + [{"id": f"fc_{uuid.uuid4().hex}", "type": "function_call",
                         "status": status, "call_id": call.id, "name": call.name,
                         "arguments": call.arguments} for call in parsed.tool_calls]

    def _item_events(self, index: int, item: dict) -> list[dict]:
        """The events that finish `item` (and, with tools, announce it first)."""
        if item["type"] == "function_call":
            ref = {"item_id": item["id"], "output_index": index}
            return [{"type": "response.output_item.added", "output_index": index,
                     "item": {**item, "arguments": "", "status": "in_progress"}},
                    {"type": "response.function_call_arguments.delta", **ref,
                     "delta": item["arguments"]},
                    {"type": "response.function_call_arguments.done", **ref,
                     "name": item["name"], "arguments": item["arguments"]},
                    {"type": "response.output_item.done", "output_index": index, "item": item}]
        text = item["content"][0]["text"]
        events = self._message_start(index)
        if self._tools is not None and text:  # nothing of it was streamed
            events.append({"type": "response.output_text.delta", **self._part_ref(index),
                           "delta": text, "logprobs": []})
        return [*events,
                {"type": "response.output_text.done", **self._part_ref(index), "text": text,
                 "logprobs": []},
                {"type": "response.content_part.done", **self._part_ref(index),
                 "part": _text_part(text)},
                {"type": "response.output_item.done", "output_index": index, "item": item}]

    def _start(self) -> list[dict]:
        if self._started:
            return []
        self._started = True
        created = response_object(self.echo, status="in_progress", output=[], usage=None)
        return [{"type": "response.created", "response": created},
                {"type": "response.in_progress", "response": created}]

    def _message_start(self, index: int = 0) -> list[dict]:
        if self._message_started:
            return []
        self._message_started = True
        item = {**message_item(self.echo, "", "in_progress"), "content": []}
        return [{"type": "response.output_item.added", "output_index": index, "item": item},
                {"type": "response.content_part.added", **self._part_ref(index),
                 "part": _text_part("")}]

    def _part_ref(self, index: int) -> dict:
        return {"item_id": self.echo.message_id, "output_index": index, "content_index": 0}


def _text_part(text: str) -> dict:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _item_status(response_status: str) -> str:
    return "incomplete" if response_status == "incomplete" else "completed"


def _usage(output: RequestOutput) -> dict:
    return response_usage(len(output.prompt_token_ids), len(output.outputs[0].token_ids),
                          output.num_cached_tokens)
