"""One call's JSON object — `{"name": ..., "arguments": {...}}` — read from text that may still be
growing, for both tool-call formats (they differ only in what surrounds the object).

When the object starts with the name and then the arguments key (the order every format's prompt
asks for, and the only one the grammar allows), the name is known as soon as its closing quote is
written and the arguments are the text after the key as it grows: a stream can send them in
fragments. Any other key order is read only once the object is complete (one piece). Either way
the arguments are reported as the model wrote them, so a stream's fragments join to exactly the
non-streamed arguments.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

# `{"name": "<name>", "<arguments key>": ` at the start of the object
_NAME_PREFIX = re.compile(r'\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"')
_ARGS_KEY = re.compile(r'\s*,\s*"(arguments|parameters)"\s*:\s*')
_CLOSE = re.compile(r"\s*\}")
_OUTSIDE_STRING = re.compile(r'[{}\[\]"]')
_IN_STRING = re.compile(r'["\\]')


@dataclass(slots=True)
class PartialCall:
    name: str | None  # None until the name's closing quote is written
    arguments: str  # the arguments object's text so far ("" before it starts)
    complete: bool  # the call's object is closed and valid
    valid: bool = True  # False: complete but not a call (bad JSON, no name, arguments no object)


def read_call(text: str) -> tuple[PartialCall, int | None]:
    """The call whose object starts at the beginning of `text` (after whitespace), and the index
    just past the object (None while it is open)."""
    head = _NAME_PREFIX.match(text)
    if head is not None:
        name = _json_string(head.group(1))
        key = _ARGS_KEY.match(text, head.end())
        if name is not None and key is not None and text[key.end():key.end() + 1] in ("{", ""):
            return _read_in_order(text, name, key.end())
        if name is not None and key is None and _may_become_key(text[head.end():]):
            return PartialCall(name, "", complete=False), None  # the name can be announced
    return _read_whole(text)


def object_end(text: str, start: int) -> int | None:
    """Index just past the JSON object opening at text[start] ("{"), or None while it is open.
    Jumps from one structural character to the next (a stream re-reads the answer each delta)."""
    depth, pos = 0, start
    while True:
        found = _OUTSIDE_STRING.search(text, pos)
        if found is None:
            return None
        char, pos = found.group(), found.end()
        if char == '"':
            pos = _string_end(text, pos)
            if pos is None:
                return None
        elif char in "{[":
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return pos


def _string_end(text: str, pos: int) -> int | None:
    """Index just past the closing quote of the string whose body starts at `pos`."""
    while True:
        found = _IN_STRING.search(text, pos)
        if found is None:
            return None
        if found.group() == '"':
            return found.end()
        pos = found.end() + 1  # a backslash escapes the next character
        if pos > len(text):
            return None


def _read_in_order(text: str, name: str, args_start: int) -> tuple[PartialCall, int | None]:
    args_end = object_end(text, args_start) if args_start < len(text) else None
    if args_end is None:
        return PartialCall(name, text[args_start:], complete=False), None
    arguments = text[args_start:args_end]
    close = _CLOSE.match(text, args_end)
    if close is None:  # more keys after the arguments: not the shape any format asks for
        return PartialCall(name, arguments, False, valid=not text[args_end:].strip()), None
    valid = isinstance(_loads(arguments), dict)
    return PartialCall(name, arguments, complete=True, valid=valid), close.end()


def _read_whole(text: str) -> tuple[PartialCall, int | None]:
    start = len(text) - len(text.lstrip())
    if start == len(text):
        return PartialCall(None, "", complete=False), None
    end = object_end(text, start) if text[start] == "{" else None
    if end is None:
        return PartialCall(None, "", complete=False, valid=text[start] == "{"), None
    value = _loads(text[start:end])
    name = value.get("name") if isinstance(value, dict) else None
    arguments = (value.get("arguments", value.get("parameters"))
                 if isinstance(value, dict) else None)
    if not isinstance(name, str) or not isinstance(arguments, dict):
        return PartialCall(None, "", complete=True, valid=False), end
    return PartialCall(name, json.dumps(arguments, ensure_ascii=False), complete=True), end


def _may_become_key(rest: str) -> bool:
    """`rest` (after the name) may still grow into `, "arguments": ` (or "parameters")."""
    compact = re.sub(r"\s+", "", rest)
    return any(f',"{key}":'.startswith(compact) for key in ("arguments", "parameters"))


def _json_string(body: str) -> str | None:
    value = _loads(f'"{body}"')
    return value if isinstance(value, str) else None


def _loads(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return None
