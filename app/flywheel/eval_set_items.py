"""Items of an operator-registered eval set: the JSONL format, its validation, its canonical form.

One item per line: `{"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...],
"expected": str}`, the last message from the user; or `{"prompt": str, "expected": str}`, shorthand
for one user message (models without a chat template read its content as a plain completion
prompt). Blank lines are skipped; line numbers in errors count every line of the file.

The canonical form (one item per line, keys sorted, shorthand expanded) is what the store keeps and
what `content_sha256` hashes, so the same items give the same hash whatever the file's layout.
This module knows nothing about the store, HTTP or models.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

MAX_ITEMS = 10_000
MAX_LINE_BYTES = 1 << 20  # one item
MAX_TOTAL_BYTES = 16 << 20  # a whole set, as UTF-8 JSONL
MAX_DESCRIPTION_CHARS = 1000
ROLES = ("system", "user", "assistant")
# Names appear in URLs, CLI arguments and gate reasons: short, no spaces, no slashes.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class EvalSetInputError(ValueError):
    """Invalid eval set input. `index` is the 0-based item (None: the set as a whole), `where` the
    place in the input a reader should look at ("line 3", "items[2]", "name")."""

    def __init__(self, reason: str, *, index: int | None = None, where: str | None = None) -> None:
        super().__init__(f"{where}: {reason}" if where else reason)
        self.reason, self.index, self.where = reason, index, where


@dataclass(frozen=True, slots=True)
class EvalItem:
    messages: list[dict]  # [{"role", "content"}], the last one from the user
    expected: str  # a correct answer contains this text

    def to_dict(self) -> dict:
        return {"messages": [dict(m) for m in self.messages], "expected": self.expected}


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise EvalSetInputError("an eval set name is 1-64 letters, digits, '.', '_' or '-', "
                                "starting with a letter or digit", where="name")
    return name


def validate_description(description: str) -> str:
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise EvalSetInputError(f"at most {MAX_DESCRIPTION_CHARS} characters", where="description")
    problem = _text_problem(description)
    if problem:
        raise EvalSetInputError(problem, where="description")
    return description


def parse_jsonl(data: bytes | str) -> list[EvalItem]:
    """Items of a JSONL file (UTF-8, an optional byte-order mark); errors name the line."""
    text = _decode(data) if isinstance(data, bytes) else data
    if len(text.encode("utf-8", "surrogatepass")) > MAX_TOTAL_BYTES:
        raise EvalSetInputError(f"the file is larger than {_mib(MAX_TOTAL_BYTES)}")
    items: list[EvalItem] = []
    # "\n" only: str.splitlines() also splits at U+2028 and friends, which JSON strings may hold.
    for number, line in enumerate(text.removeprefix("\ufeff").split("\n"), start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        if len(line.encode("utf-8", "surrogatepass")) > MAX_LINE_BYTES:
            raise EvalSetInputError(f"longer than {_mib(MAX_LINE_BYTES)}", index=len(items),
                                    where=where)
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as e:
            raise EvalSetInputError(f"not valid JSON ({e.msg} at column {e.colno})",
                                    index=len(items), where=where) from e
        except RecursionError as e:  # thousands of nested brackets
            raise EvalSetInputError("not valid JSON (nested too deeply)", index=len(items),
                                    where=where) from e
        _check_count(len(items) + 1)
        items.append(parse_item(raw, index=len(items), where=where))
    if not items:
        raise EvalSetInputError("no items: the file holds no JSON lines")
    return items


def parse_items(raw_items: list[Any]) -> list[EvalItem]:
    """Items already decoded from JSON (an API body); errors name `items[i]`."""
    if not raw_items:
        raise EvalSetInputError("no items: 'items' is empty", where="items")
    _check_count(len(raw_items))
    items = [parse_item(raw, index=i, where=f"items[{i}]") for i, raw in enumerate(raw_items)]
    if len(items_to_jsonl(items).encode("utf-8")) > MAX_TOTAL_BYTES:
        raise EvalSetInputError(f"the items are larger than {_mib(MAX_TOTAL_BYTES)}", where="items")
    return items


def parse_item(raw: Any, *, index: int, where: str) -> EvalItem:
    def fail(reason: str) -> EvalSetInputError:
        return EvalSetInputError(reason, index=index, where=where)

    if not isinstance(raw, dict):
        raise fail(f"an item is a JSON object, got {_json_type(raw)}")
    unknown = sorted(set(raw) - {"messages", "prompt", "expected"})
    if unknown:
        raise fail(f"unknown field {unknown[0]!r} "
                   "(an item has 'messages' or 'prompt', and 'expected')")
    if ("messages" in raw) == ("prompt" in raw):
        raise fail("an item needs exactly one of 'messages' or 'prompt'")
    if "messages" in raw:
        messages = _messages(raw["messages"], fail)
    else:
        messages = [_prompt(raw["prompt"], fail)]
    if "expected" not in raw:
        raise fail("missing field 'expected'")
    expected = raw["expected"]
    if not isinstance(expected, str):
        raise fail(f"'expected' must be a string, got {_json_type(expected)}")
    if not expected.strip():
        raise fail("'expected' is blank: every answer would contain it")
    if problem := _text_problem(expected):
        raise fail(f"'expected' {problem}")
    return EvalItem(messages=messages, expected=expected)


def items_to_jsonl(items: list[EvalItem]) -> str:
    """The canonical JSONL text of `items` (the store keeps this; the hash is over it)."""
    return "".join(json.dumps(item.to_dict(), ensure_ascii=False, sort_keys=True) + "\n"
                   for item in items)


def content_sha256(items: list[EvalItem]) -> str:
    return hashlib.sha256(items_to_jsonl(items).encode("utf-8")).hexdigest()


def _messages(raw: Any, fail) -> list[dict]:
    if not isinstance(raw, list) or not raw:
        raise fail("'messages' must be a non-empty list")
    messages = []
    for i, message in enumerate(raw):
        at = f"messages[{i}]"
        if not isinstance(message, dict):
            raise fail(f"{at} must be an object with 'role' and 'content'")
        if unknown := sorted(set(message) - {"role", "content"}):
            raise fail(f"{at} has an unknown field {unknown[0]!r}")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise fail(f"{at}.role must be one of {', '.join(ROLES)}, got {role!r}"[:200])
        if not isinstance(content, str):
            raise fail(f"{at}.content must be a string, got {_json_type(content)}")
        if problem := _text_problem(content):
            raise fail(f"{at}.content {problem}")
        messages.append({"role": role, "content": content})
    if messages[-1]["role"] != "user":
        raise fail(f"the last message must be from the user, not {messages[-1]['role']!r}")
    if not messages[-1]["content"].strip():
        raise fail("the last user message is blank")
    return messages


def _prompt(raw: Any, fail) -> dict:
    if not isinstance(raw, str):
        raise fail(f"'prompt' must be a string, got {_json_type(raw)}")
    if not raw.strip():
        raise fail("'prompt' is blank")
    if problem := _text_problem(raw):
        raise fail(f"'prompt' {problem}")
    return {"role": "user", "content": raw}


def _text_problem(text: str) -> str | None:
    """Why a string cannot be stored or tokenized as is: JSON can spell lone surrogates
    ("\\ud800") that UTF-8 cannot encode, and PostgreSQL text refuses NUL."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "holds a lone surrogate (invalid Unicode)"
    if "\x00" in text:
        return "holds a NUL character"
    return None


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise EvalSetInputError(f"not UTF-8 (byte {e.start})", where=f"line {line}") from e


def _check_count(count: int) -> None:
    if count > MAX_ITEMS:
        raise EvalSetInputError(f"more than {MAX_ITEMS} items")


def _mib(num_bytes: int) -> str:
    return f"{num_bytes / (1 << 20):g} MiB"


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)
