"""The eval set JSONL format: what parses, and each kind of bad input failing with the line it is on."""
from __future__ import annotations

import json

import pytest

from app.flywheel import eval_set_items
from app.flywheel.eval_set_items import (EvalItem, EvalSetInputError, content_sha256, items_to_jsonl,
                                         parse_items, parse_jsonl, validate_description, validate_name)

CHAT = {"messages": [{"role": "system", "content": "Answer in one word."},
                     {"role": "user", "content": "Capital of Zarnovia?"}], "expected": "Velmora"}


def _jsonl(*rows) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()


def test_messages_and_prompt_shorthand_parse_in_order():
    data = b"\xef\xbb\xbf" + _jsonl(CHAT, "", {"prompt": "Once upon a", "expected": "time"}).replace(
        b"\n", b"\r\n")  # a byte-order mark, Windows line ends and a blank line are tolerated
    items = parse_jsonl(data)
    assert items == [EvalItem(CHAT["messages"], "Velmora"),
                     EvalItem([{"role": "user", "content": "Once upon a"}], "time")]


def test_canonical_form_round_trips_and_its_hash_ignores_layout():
    tricky = {"prompt": "line\u2028separator, \"quotes\", emoji \U0001F600", "expected": "x"}
    items = parse_jsonl(_jsonl(CHAT, tricky))
    assert parse_jsonl(items_to_jsonl(items)) == items
    spaced = parse_jsonl(b"\n\n" + json.dumps(CHAT, indent=None, separators=(" , ", " : ")).encode()
                         + b"\n" + json.dumps(tricky, ensure_ascii=True).encode())
    assert content_sha256(spaced) == content_sha256(items)
    assert content_sha256(items[:1]) != content_sha256(items)


@pytest.mark.parametrize("rows, where, reason", [
    ((), None, "no items"),
    (("", "   "), None, "no items"),
    ((CHAT, '{"prompt": "hi", "expected": '), "line 2", "not valid JSON"),
    (("[" * 100_000,), "line 1", "nested too deeply"),
    (('["a list"]',), "line 1", "an item is a JSON object"),
    (({"prompt": "hi"},), "line 1", "missing field 'expected'"),
    (({"expected": "x"},), "line 1", "exactly one of 'messages' or 'prompt'"),
    (({**CHAT, "prompt": "hi"},), "line 1", "exactly one of"),
    (({**CHAT, "expect": "typo"},), "line 1", "unknown field 'expect'"),
    (({"prompt": "hi", "expected": 5},), "line 1", "'expected' must be a string, got a number"),
    (({"prompt": "hi", "expected": "  "},), "line 1", "'expected' is blank"),
    (({"prompt": ["hi"], "expected": "x"},), "line 1", "'prompt' must be a string"),
    (({"messages": [], "expected": "x"},), "line 1", "non-empty list"),
    (({"messages": [{"role": "user", "content": 3}], "expected": "x"},), "line 1",
     "messages[0].content must be a string, got a number"),
    (({"messages": [{"role": "user", "content": None}], "expected": "x"},), "line 1", "got null"),
    (({"messages": [{"role": "robot", "content": "hi"}], "expected": "x"},), "line 1",
     "messages[0].role must be one of system, user, assistant"),
    (({"messages": [{"role": "user", "content": "hi", "name": "x"}], "expected": "x"},), "line 1",
     "unknown field 'name'"),
    (({"messages": CHAT["messages"] + [{"role": "assistant", "content": "Velmora"}],
       "expected": "x"},), "line 1", "the last message must be from the user, not 'assistant'"),
    ((CHAT, CHAT, '{"prompt": "\\ud800 lone", "expected": "x"}'), "line 3", "lone surrogate"),
    (('{"prompt": "hi", "expected": "\\udfff"}',), "line 1", "lone surrogate"),
    (('{"prompt": "nul \\u0000", "expected": "x"}',), "line 1", "NUL"),
])
def test_bad_input_names_the_line(rows, where, reason):
    with pytest.raises(EvalSetInputError) as caught:
        parse_jsonl(_jsonl(*rows))
    assert caught.value.where == where and reason in caught.value.reason
    assert str(caught.value).startswith(f"{where}: " if where else reason)


def test_line_numbers_count_blank_lines():
    with pytest.raises(EvalSetInputError, match="^line 4: missing field 'expected'"):
        parse_jsonl(_jsonl(CHAT, "", CHAT, {"prompt": "hi"}))


def test_bytes_that_are_not_utf8_name_their_line():
    with pytest.raises(EvalSetInputError, match=r"^line 2: not UTF-8"):
        parse_jsonl(_jsonl(CHAT) + b'{"prompt": "\xff", "expected": "x"}\n')


def test_size_caps(monkeypatch):
    monkeypatch.setattr(eval_set_items, "MAX_ITEMS", 3)
    assert len(parse_jsonl(_jsonl(CHAT, CHAT, CHAT))) == 3
    with pytest.raises(EvalSetInputError, match="more than 3 items"):
        parse_jsonl(_jsonl(CHAT, CHAT, CHAT, CHAT))
    with pytest.raises(EvalSetInputError, match="more than 3 items"):
        parse_items([CHAT] * 4)
    long_line = json.dumps({"prompt": "a" * eval_set_items.MAX_LINE_BYTES, "expected": "x"})
    with pytest.raises(EvalSetInputError, match="^line 2: longer than 1 MiB"):
        parse_jsonl(_jsonl(CHAT, long_line))
    monkeypatch.setattr(eval_set_items, "MAX_TOTAL_BYTES", 1000)
    with pytest.raises(EvalSetInputError, match="larger than"):
        parse_jsonl(_jsonl(*[{"prompt": "p" * 600, "expected": "x"}] * 2))
    with pytest.raises(EvalSetInputError, match="^items: the items are larger than"):
        parse_items([{"prompt": "p" * 600, "expected": "x"}] * 2)


def test_api_items_name_their_index():
    assert parse_items([CHAT]) == [EvalItem(CHAT["messages"], "Velmora")]
    with pytest.raises(EvalSetInputError) as caught:
        parse_items([CHAT, {"prompt": "hi", "expected": ""}])
    assert (caught.value.where, caught.value.index) == ("items[1]", 1)
    with pytest.raises(EvalSetInputError, match="'items' is empty"):
        parse_items([])


@pytest.mark.parametrize("name", ["facts", "my-set_v2.1", "A", "x" * 64])
def test_good_names(name):
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", "-x", ".hidden", "a/b", "has space", "x" * 65, "naïve", "a\n"])
def test_bad_names(name):
    with pytest.raises(EvalSetInputError, match="^name: "):
        validate_name(name)


def test_descriptions():
    assert validate_description("Made-up facts <b>taught</b> in March").startswith("Made-up")
    with pytest.raises(EvalSetInputError, match="^description: at most"):
        validate_description("d" * 1001)
    with pytest.raises(EvalSetInputError, match="lone surrogate"):
        validate_description("\ud800")
