"""Llama 3.x's JSON tool-call format: the answer is the call itself, `{"name": ...,
"parameters": {...}}` (optionally after the `<|python_tag|>` token), several calls separated by
`;`. An answer that does not start with `{` is plain content; text after the calls is dropped.
"""
from __future__ import annotations

from app.tool_calls.call_json import read_call
from app.tool_calls.parsing import Snapshot

PYTHON_TAG = "<|python_tag|>"
SEPARATOR = "; "


class Llama3JsonParser:
    def snapshot(self, text: str, final: bool) -> Snapshot:
        stripped = text.lstrip()
        body = stripped.removeprefix(PYTHON_TAG).lstrip()
        if not final and (PYTHON_TAG.startswith(stripped) or not body):
            return Snapshot("")  # nothing yet, or only (part of) the python tag: wait
        if not body.startswith("{"):
            return Snapshot(text)
        snapshot, pos = Snapshot(""), 0
        while pos < len(body):
            call, end = read_call(body[pos:])
            snapshot.calls.append(call)
            if not call.valid:
                snapshot.valid = False
            if end is None or not call.valid:
                break
            pos = _next_call(body, pos + end)
        return snapshot


def _next_call(body: str, pos: int) -> int:
    """Where the next call starts after a separator; len(body) when the answer ends there or
    other text follows (dropped, as the Hermes parser drops it)."""
    rest = body[pos:].lstrip()
    if rest.startswith(";"):
        rest = rest[1:].lstrip()
    elif not rest.startswith("{"):
        return len(body)
    return len(body) - len(rest)
