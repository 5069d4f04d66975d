"""Tool calls as stream deltas, the way OpenAI sends them: a call's first delta carries its
index, id, type and function name (arguments ""), later ones only argument fragments; content
before the calls streams as content.

Each new piece of text re-reads the answer from its first unfinished call (finished ones are
settled) and sends what is new since the last delta; the parsers only ever extend what they
report, so the fragments join to the non-streamed answer. A call is announced once its name is
complete.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.tool_calls.parsing import Resume, ToolParser
from app.tool_calls.spec import new_call_id


@dataclass(slots=True)
class StreamDelta:
    content: str  # new content ("" when none)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # OpenAI's delta.tool_calls


class ToolCallStream:
    """One choice's answer, fed its text pieces in order."""

    def __init__(self, parser: ToolParser) -> None:
        self._parser = parser
        self._text = ""
        self._content_sent = 0  # characters of content sent
        self._arguments_sent: list[int] = []  # per announced call, characters of arguments sent
        self._resume: Resume | None = None  # the settled part of the last snapshot

    @property
    def has_calls(self) -> bool:
        return bool(self._arguments_sent)

    def feed(self, text: str, final: bool) -> StreamDelta:
        """The delta for the next piece of the answer; `final`: it is the last piece."""
        self._text += text
        snapshot = self._parser.snapshot(self._text, final, self._resume)
        self._resume = snapshot.resume
        shown = snapshot.content
        if final and not snapshot.valid and not self.has_calls:
            shown = self._text  # no call after all (JSON that is not one): all of it is content
        content = "" if self.has_calls else shown[self._content_sent:]
        self._content_sent += len(content)
        delta = StreamDelta(content)
        for index, call in enumerate(snapshot.calls):
            if call.name is None:
                break
            if index == len(self._arguments_sent):
                self._arguments_sent.append(0)
                delta.tool_calls.append({"index": index, "id": new_call_id(), "type": "function",
                                         "function": {"name": call.name, "arguments": ""}})
            fragment = call.arguments[self._arguments_sent[index]:]
            if fragment:
                self._arguments_sent[index] += len(fragment)
                _add_arguments(delta.tool_calls, index, fragment)
        return delta


def _add_arguments(entries: list[dict[str, Any]], index: int, fragment: str) -> None:
    """Arguments join the call's announcement when it is in the same delta."""
    if entries and entries[-1]["index"] == index:
        entries[-1]["function"]["arguments"] += fragment
    else:
        entries.append({"index": index, "function": {"arguments": fragment}})
