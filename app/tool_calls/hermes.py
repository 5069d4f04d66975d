"""The Hermes / Qwen2.5 tool-call format: each call is a JSON object between `<tool_call>` and
`</tool_call>` (`{"name": ..., "arguments": {...}}`), optionally after some text.

Text before the first `<tool_call>` is the answer's content; text after the calls is dropped. A
block that holds no call (bad JSON, no name, arguments no object) makes the whole answer plain
content.
"""
from __future__ import annotations

from app.tool_calls.call_json import read_call
from app.tool_calls.parsing import Snapshot

OPEN, CLOSE = "<tool_call>", "</tool_call>"


class HermesParser:
    def snapshot(self, text: str, final: bool) -> Snapshot:
        start = text.find(OPEN)
        if start < 0:
            return Snapshot(text if final else _shown(text))
        snapshot = Snapshot(text[:start].rstrip())
        pos = start
        while pos < len(text):
            if not text.startswith(OPEN, pos):
                break  # other text after the calls is dropped, as vLLM's Hermes parser does
            body_start = pos + len(OPEN)
            end = text.find(CLOSE, body_start)
            call, object_end = read_call(text[body_start:] if end < 0 else text[body_start:end])
            snapshot.calls.append(call)
            if not call.valid or (end >= 0 and not _only_the_call(text[body_start:end],
                                                                  object_end)):
                snapshot.valid = False
                break
            if end < 0:
                break
            pos = end + len(CLOSE)
            pos += len(text[pos:]) - len(text[pos:].lstrip())
        return snapshot


def _only_the_call(body: str, object_end: int | None) -> bool:
    """A closed block holds one call's object and nothing else."""
    return object_end is not None and not body[object_end:].strip()


def _shown(text: str) -> str:
    """`text` less a trailing piece that may be the start of `<tool_call>` (and the whitespace
    before it, which belongs to the content only if more text follows)."""
    for size in range(min(len(OPEN) - 1, len(text)), 0, -1):
        if OPEN.startswith(text[-size:]):
            return text[:-size].rstrip()
    return text.rstrip()
