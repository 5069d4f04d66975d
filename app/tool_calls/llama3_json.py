"""Llama 3.x's JSON tool-call format: the answer is the call itself, `{"name": ...,
"parameters": {...}}` (optionally after the `<|python_tag|>` token), several calls separated by
`;`. An answer that does not start with `{` is plain content; text after the calls is dropped.
"""
from __future__ import annotations

from app.tool_calls.call_json import read_call
from app.tool_calls.parsing import Resume, Snapshot

PYTHON_TAG = "<|python_tag|>"
SEPARATOR = "; "


class Llama3JsonParser:
    def snapshot(self, text: str, final: bool, resume: Resume | None = None) -> Snapshot:
        if resume is not None:
            return self._calls(text, resume.snapshot(), resume.pos)
        stripped = text.lstrip()
        body = stripped.removeprefix(PYTHON_TAG).lstrip()
        if not final and (PYTHON_TAG.startswith(stripped) or not body):
            return Snapshot("")  # nothing yet, or only (part of) the python tag: wait
        if not body.startswith("{"):
            return Snapshot(text)
        return self._calls(text, Snapshot(""), len(text) - len(body))

    @staticmethod
    def _calls(text: str, snapshot: Snapshot, pos: int) -> Snapshot:
        """`snapshot` with the calls from `pos` on: at a call's start, or just past a call (then
        a separator or the end follows; other text is dropped, as the Hermes parser drops it)."""
        while True:
            pos = _next_call(text, pos) if snapshot.calls else pos
            if pos < 0:
                return snapshot
            call, end = read_call(text[pos:])
            snapshot.calls.append(call)
            if not call.valid:
                snapshot.valid = False
                return snapshot
            if end is None:
                return snapshot
            pos += end
            snapshot.resume = Resume(pos, snapshot.content, tuple(snapshot.calls))


def _next_call(text: str, pos: int) -> int:
    """Where the next call starts after the separator that follows `pos`, or -1 (none yet, or
    none at all)."""
    rest = text[pos:].lstrip()
    if rest.startswith(";"):
        rest = rest[1:].lstrip()
        return len(text) - len(rest) if rest.startswith("{") else -1
    return -1
