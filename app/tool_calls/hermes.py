"""The Hermes / Qwen2.5 tool-call format: each call is a JSON object between `<tool_call>` and
`</tool_call>` (`{"name": ..., "arguments": {...}}`), optionally after some text.

Text before the first `<tool_call>` is the answer's content; text after the calls is dropped. A
block that holds no call (bad JSON, no name, arguments no object) makes the whole answer plain
content.
"""
from __future__ import annotations

from app.tool_calls.call_json import read_call
from app.tool_calls.parsing import Resume, Snapshot

OPEN, CLOSE = "<tool_call>", "</tool_call>"


class HermesParser:
    def snapshot(self, text: str, final: bool, resume: Resume | None = None) -> Snapshot:
        if resume is not None:
            snapshot, pos = resume.snapshot(), resume.pos
        else:
            start = text.find(OPEN)
            if start < 0:
                return Snapshot(text if final else _shown(text))
            snapshot, pos = Snapshot(text[:start].rstrip()), start
        while True:  # other text after the calls is dropped (as vLLM's Hermes parser does)
            pos += len(text) - pos - len(text[pos:].lstrip())
            if not text.startswith(OPEN, pos):
                return snapshot
            body_start = pos + len(OPEN)
            call, object_end = read_call(text[body_start:])
            snapshot.calls.append(call)
            if not call.valid:
                snapshot.valid = False
                return snapshot
            if object_end is None:
                return snapshot  # still open (or cut off by max_tokens)
            pos = _after_close(text, body_start + object_end)
            if pos < 0:
                snapshot.valid = pos == -1
                return snapshot
            snapshot.resume = Resume(pos, snapshot.content, tuple(snapshot.calls))


def _after_close(text: str, pos: int) -> int:
    """Index just past the close tag that follows the call object ending at `pos`; -1 when the
    text ends in (part of) the tag (still coming, or cut off by max_tokens), -2 when something
    else follows."""
    rest = text[pos:].lstrip()
    if rest.startswith(CLOSE):
        return len(text) - len(rest) + len(CLOSE)
    return -1 if CLOSE.startswith(rest) else -2


def _shown(text: str) -> str:
    """`text` less a trailing piece that may be the start of `<tool_call>` (and the whitespace
    before it, which belongs to the content only if more text follows)."""
    for size in range(min(len(OPEN) - 1, len(text)), 0, -1):
        if OPEN.startswith(text[-size:]):
            return text[:-size].rstrip()
    return text.rstrip()
