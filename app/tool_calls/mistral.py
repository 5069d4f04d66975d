"""Mistral's tool-call format: the calls follow a `[TOOL_CALLS]` marker, either as one JSON list
of `{"name": ..., "arguments": {...}}` objects (the v3 tokenizer; an object may carry an `"id"`
after its arguments, as the v3 template writes history) or, in the newer tokenizers, as
`[TOOL_CALLS]name[ARGS]{...}` once per call.

Text before the first marker is the answer's content; text after the calls is dropped (as the
Hermes parser drops it). On a real Mistral checkpoint `[TOOL_CALLS]` is a special token, so the
answer must be decoded with special tokens kept for this parser to see it.

Mistral's templates refuse history whose call ids are not 9 letters or digits; `short_call_id`
maps an OpenAI id (`call_...`) onto one, the same for the assistant's call and the tool result
that answers it.
"""
from __future__ import annotations

import hashlib
import json
import re

from app.tool_calls.call_json import PartialCall, object_end, read_call
from app.tool_calls.parsing import Resume, Snapshot

TOOL_CALLS, ARGS = "[TOOL_CALLS]", "[ARGS]"
LIST_OPEN, LIST_CLOSE, LIST_SEPARATOR = "[TOOL_CALLS] [", "]", ", "
_NAME_SO_FAR = re.compile(r"[A-Za-z0-9_-]*")
_CALL_ID = re.compile(r"[A-Za-z0-9]{9}")


class MistralParser:
    def snapshot(self, text: str, final: bool, resume: Resume | None = None) -> Snapshot:
        marker = text.find(TOOL_CALLS)
        if resume is not None:
            snapshot, pos = resume.snapshot(), resume.pos
        elif marker < 0:
            return Snapshot(text if final else _shown(text))
        else:
            snapshot, pos = Snapshot(text[:marker].rstrip()), marker + len(TOOL_CALLS)
        body = _skip_space(text, marker + len(TOOL_CALLS))
        if body == len(text):
            pass  # the marker and nothing else yet
        elif text[body] == "[":
            snapshot = _list_calls(text, snapshot, pos if snapshot.calls else body + 1)
        else:
            snapshot = _args_calls(text, snapshot, pos)
        if final and not any(call.name for call in snapshot.calls):
            snapshot.valid = False  # a marker that no call follows: the text is the content
        return snapshot


def _list_calls(text: str, snapshot: Snapshot, pos: int) -> Snapshot:
    """v3: `[{...}, {...}]`; `pos` is just past the `[` or just past a settled call."""
    while True:
        if snapshot.calls:
            pos = _skip_space(text, pos)
            if not text.startswith(",", pos):
                return snapshot  # "]", the end, or (dropped) anything else
            pos += 1
        call, end = _list_element(text[pos:])
        snapshot.calls.append(call)
        if not call.valid:
            snapshot.valid = False
            return snapshot
        if end is None:
            return snapshot
        pos += end
        snapshot.resume = Resume(pos, snapshot.content, tuple(snapshot.calls))


def _list_element(text: str) -> tuple[PartialCall, int | None]:
    """One object of the v3 list. Its name and arguments stream as in the other formats; keys
    after the arguments (the `"id"` of v3 history) are allowed, the call is read once it closes."""
    call, end = read_call(text)
    if call.valid or call.name is None:
        return call, end
    start = _skip_space(text, 0)
    close = object_end(text, start)
    if close is None:
        return PartialCall(call.name, call.arguments, complete=False), None
    value = _loads(text[start:close])
    valid = (isinstance(value, dict) and value.get("name") == call.name
             and isinstance(value.get("arguments"), dict) and call.arguments.startswith("{")
             and _loads(call.arguments) == value["arguments"])
    return PartialCall(call.name, call.arguments, complete=True, valid=valid), close


def _args_calls(text: str, snapshot: Snapshot, pos: int) -> Snapshot:
    """Newer tokenizers: `name[ARGS]{...}` after each marker; `pos` is just past the first
    marker or just past a settled call."""
    while True:
        if snapshot.calls:
            pos = _skip_space(text, pos)
            if not text.startswith(TOOL_CALLS, pos):
                return snapshot  # the end, a marker still coming, or (dropped) other text
            pos += len(TOOL_CALLS)
        call, end = _args_call(text, pos)
        snapshot.calls.append(call)
        if not call.valid:
            snapshot.valid = False
            return snapshot
        if end is None:
            return snapshot
        pos = end
        snapshot.resume = Resume(pos, snapshot.content, tuple(snapshot.calls))


def _args_call(text: str, pos: int) -> tuple[PartialCall, int | None]:
    """The call `name[ARGS]{...}` starting at `pos`, and the index past its arguments object."""
    args_at = text.find(ARGS, pos)
    if args_at < 0:  # the name (or the [ARGS] after it) is still coming
        rest = text[pos:].strip()
        name_end = _NAME_SO_FAR.match(rest).end()
        tail = rest[name_end:]
        return PartialCall(None, "", complete=False, valid=ARGS.startswith(tail) or not tail), None
    name = text[pos:args_at].strip()
    if not name or _NAME_SO_FAR.fullmatch(name) is None:
        return PartialCall(None, "", complete=True, valid=False), None
    start = _skip_space(text, args_at + len(ARGS))
    if start == len(text):
        return PartialCall(name, "", complete=False), None
    if text[start] != "{":
        return PartialCall(name, "", complete=True, valid=False), None
    end = object_end(text, start)
    if end is None:
        return PartialCall(name, text[start:], complete=False), None
    arguments = text[start:end]
    return PartialCall(name, arguments, complete=True,
                       valid=isinstance(_loads(arguments), dict)), end


def short_call_id(call_id: str | None) -> str:
    """A call id as Mistral's templates accept it: 9 letters or digits. One that already is
    stays; any other maps to the first 9 hex digits of its SHA-256, so the assistant's call and
    the tool result that answers it (both carrying the same OpenAI id) still match."""
    call_id = call_id or ""
    if _CALL_ID.fullmatch(call_id):
        return call_id
    return hashlib.sha256(call_id.encode("utf-8")).hexdigest()[:9]


def with_short_call_ids(messages: list[dict]) -> list[dict]:
    """The history with every call id and tool_call_id in Mistral's form."""
    result = []
    for message in messages:
        message = dict(message)
        if message.get("tool_calls"):
            message["tool_calls"] = [{**call, "id": short_call_id(call.get("id"))}
                                     for call in message["tool_calls"]]
        if message.get("role") == "tool":
            message["tool_call_id"] = short_call_id(message.get("tool_call_id"))
        result.append(message)
    return result


def _skip_space(text: str, pos: int) -> int:
    return len(text) - len(text[pos:].lstrip())


def _shown(text: str) -> str:
    """`text` less a trailing piece that may be the start of `[TOOL_CALLS]`."""
    for size in range(min(len(TOOL_CALLS) - 1, len(text)), 0, -1):
        if TOOL_CALLS.startswith(text[-size:]):
            return text[:-size].rstrip()
    return text.rstrip()


def _loads(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return None
