"""What a tool-call parser reports about a (possibly still growing) answer, and the final message
built from it. Each format has its own parser module (`hermes`, `llama3_json`, `mistral`); each
answers `snapshot(text, final)`, which `message_from` (one answer) and `ToolCallStream` (deltas)
read.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from app.tool_calls.call_json import PartialCall
from app.tool_calls.spec import ToolCall, new_call_id


@dataclass(slots=True)
class Snapshot:
    # the text before any call that is safe to show: while not final, a trailing piece that may
    # still turn into a call's start (and trailing whitespace) is held back
    content: str
    calls: list[PartialCall] = field(default_factory=list)  # in order, the last maybe open
    # False: the answer tried a call that is not one (bad JSON, text between calls); the whole
    # text is then the answer's content
    valid: bool = True
    resume: Resume | None = None  # what is settled: later text cannot change it


@dataclass(frozen=True, slots=True)
class Resume:
    """A snapshot's settled part: the content and complete calls before `pos`. Text only grows,
    so the next snapshot of the same answer starts reading at `pos` (a stream does not re-read
    every finished call on every delta)."""
    pos: int
    content: str
    calls: tuple[PartialCall, ...]

    def snapshot(self) -> Snapshot:
        return Snapshot(self.content, list(self.calls), resume=self)


class ToolParser(Protocol):
    def snapshot(self, text: str, final: bool, resume: Resume | None = None) -> Snapshot:
        """The calls in `text`; `final`: the answer is complete (nothing held back); `resume`:
        the settled part of an earlier snapshot of a prefix of `text`."""


@dataclass(slots=True)
class ParsedMessage:
    content: str | None  # None when the answer is only calls (as OpenAI sends it)
    tool_calls: list[ToolCall]


def message_from(parser: ToolParser, text: str) -> ParsedMessage:
    """A finished answer's content and calls. A call cut short by max_tokens is kept with the
    arguments written so far (finish_reason "length" says so), as a stream would have sent it."""
    snapshot = parser.snapshot(text, final=True)
    calls = [c for c in snapshot.calls if c.name is not None]
    if not snapshot.valid or not calls:
        return ParsedMessage(text, [])
    return ParsedMessage(snapshot.content or None,
                         [ToolCall(new_call_id(), c.name, c.arguments) for c in calls])
