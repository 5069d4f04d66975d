"""The tool-call parsers on hand-written answers in each format, whole and streamed: at every
split of an answer into pieces the stream's deltas join to exactly the non-streamed message
(content, names, arguments), calls are announced once with id/type/name, and text that may start
a call is never sent as content."""
from __future__ import annotations

import json

import pytest

from app.tool_calls.formats import ToolFormat, parser_for
from app.tool_calls.parsing import message_from
from app.tool_calls.streaming import ToolCallStream

HERMES = parser_for(ToolFormat.HERMES)
LLAMA3 = parser_for(ToolFormat.LLAMA3_JSON)
MISTRAL = parser_for(ToolFormat.MISTRAL)

# (parser, answer, expected content, expected [(name, arguments)])
CASES = [
    (HERMES, '<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n</tool_call>',
     None, [("add", '{"a": 2, "b": 3}')]),
    (HERMES, 'Let me look.\n<tool_call>\n{"name": "weather", "arguments": {"city": "Paris }{\\" '
             '</tool_call>", "days": [1, {"x": null}]}}\n</tool_call>\n<tool_call>\n'
             '{"arguments": {"q": 1}, "name": "search"}\n</tool_call>\n',
     "Let me look.", [("weather", '{"city": "Paris }{\\" </tool_call>", "days": [1, {"x": null}]}'),
                      ("search", '{"q": 1}')]),
    (HERMES, "A plain answer with <b>tags</b> and a < sign. ", "A plain answer with <b>tags</b> "
                                                             "and a < sign. ", []),
    (HERMES, '<tool_call>\n{"name": "add", "arguments": 3}\n</tool_call>',
     '<tool_call>\n{"name": "add", "arguments": 3}\n</tool_call>', []),  # not a call: content
    (HERMES, '<tool_call>\n{"name": "add", "arguments": {"a": "cut sh',  # max_tokens mid-call
     None, [("add", '{"a": "cut sh')]),
    (LLAMA3, '{"name": "add", "parameters": {"a": 1, "b": 2}}', None, [("add", '{"a": 1, "b": 2}')]),
    (LLAMA3, '<|python_tag|>{"name": "f", "parameters": {}}; {"name": "g", "parameters": {"s": ";"}}',
     None, [("f", "{}"), ("g", '{"s": ";"}')]),
    (LLAMA3, "Paris is the capital {of France}.", "Paris is the capital {of France}.", []),
    (LLAMA3, '{"answer": 42, "name": 7}', '{"answer": 42, "name": 7}', []),  # JSON, no call
    (MISTRAL, '[TOOL_CALLS] [{"name": "add", "arguments": {"a": 2, "b": 3}}]', None,
     [("add", '{"a": 2, "b": 3}')]),
    # v3 history writes an "id" after the arguments; a model trained on it may too
    (MISTRAL, 'Checking. [TOOL_CALLS] [{"name": "weather", "arguments": {"city": "[Paris], }"}, '
              '"id": "a1b2c3d4e"}, {"arguments": {"q": 1}, "name": "search"}]',
     "Checking.", [("weather", '{"city": "[Paris], }"}'), ("search", '{"q": 1}')]),
    (MISTRAL, '[TOOL_CALLS]add[ARGS]{"a": 1, "b": 2}[TOOL_CALLS]echo[ARGS]{"s": "[TOOL_CALLS]"}',
     None, [("add", '{"a": 1, "b": 2}'), ("echo", '{"s": "[TOOL_CALLS]"}')]),
    (MISTRAL, "Lists look like [1, 2] and [TOOLS] too.", "Lists look like [1, 2] and [TOOLS] too.",
     []),
    (MISTRAL, '[TOOL_CALLS] [{"name": "add", "arguments": 3}]',
     '[TOOL_CALLS] [{"name": "add", "arguments": 3}]', []),  # not a call: content
    (MISTRAL, "[TOOL_CALLS] I cannot call anything.", "[TOOL_CALLS] I cannot call anything.", []),
    (MISTRAL, '[TOOL_CALLS] [{"name": "add", "arguments": {"a": "cut sh', None,
     [("add", '{"a": "cut sh')]),
]
IDS = ["hermes-one", "hermes-text-then-two", "hermes-plain", "hermes-bad-arguments",
       "hermes-cut-off", "llama3-one", "llama3-two", "llama3-plain", "llama3-json-answer",
       "mistral-one", "mistral-text-then-two-with-ids", "mistral-args-form", "mistral-plain",
       "mistral-bad-arguments", "mistral-marker-then-text", "mistral-cut-off"]


@pytest.mark.parametrize(("parser", "text", "content", "calls"), CASES, ids=IDS)
def test_whole_answer(parser, text, content, calls):
    message = message_from(parser, text)
    assert message.content == content
    assert [(c.name, c.arguments) for c in message.tool_calls] == calls
    for call in message.tool_calls:
        assert call.id.startswith("call_") and len(call.id) > 10
        if call.arguments.endswith("}"):
            json.loads(call.arguments)
    assert len({c.id for c in message.tool_calls}) == len(message.tool_calls)


# a malformed call is the one case that differs: a stream has already sent what it parsed
WELL_FORMED = [(case, id_) for case, id_ in zip(CASES, IDS) if not id_.endswith("bad-arguments")]


@pytest.mark.parametrize(("parser", "text", "content", "calls"), [c for c, _ in WELL_FORMED],
                         ids=[i for _, i in WELL_FORMED])
def test_streamed_at_every_split_equals_the_whole(parser, text, content, calls):
    for size in (1, 2, 3, 5, 8, 13, len(text)):
        pieces = [text[i:i + size] for i in range(0, len(text), size)]
        streamed_content, streamed = _stream(parser, pieces)
        assert streamed_content == (content or ""), size
        assert [(c["name"], c["arguments"]) for c in streamed] == calls, size


def test_content_that_may_start_a_call_is_held_back():
    stream = ToolCallStream(HERMES)
    assert stream.feed("Sure. <tool", final=False).content == "Sure."
    delta = stream.feed('_call>\n{"name": "add", "arg', final=False)
    assert delta.content == "" and delta.tool_calls[0]["function"] == {"name": "add",
                                                                       "arguments": ""}
    assert set(delta.tool_calls[0]) == {"index", "id", "type", "function"}
    delta = stream.feed('uments": {"a": 1', final=False)
    assert delta.tool_calls == [{"index": 0, "function": {"arguments": '{"a": 1'}}]
    assert stream.has_calls
    other = ToolCallStream(HERMES)
    assert other.feed("1 < 2 and <", final=False).content == "1 < 2 and"
    assert other.feed("b>", final=True).content == " <b>"


def test_mistral_holds_back_a_marker_and_announces_names():
    stream = ToolCallStream(MISTRAL)
    assert stream.feed("Sure. [TOOL", final=False).content == "Sure."
    delta = stream.feed('_CALLS] [{"name": "add", "arguments": {"a"', final=False)
    assert delta.content == "" and delta.tool_calls[0]["function"] == {"name": "add",
                                                                       "arguments": '{"a"'}
    delta = stream.feed(': 1}, "id": "abcdefghi"}, {"name": "sub", "arguments": {}}]', final=True)
    assert delta.tool_calls[0] == {"index": 0, "function": {"arguments": ": 1}"}}
    assert delta.tool_calls[1]["function"] == {"name": "sub", "arguments": "{}"}
    other = ToolCallStream(MISTRAL)
    assert other.feed("see [TOOL", final=False).content == "see"
    assert other.feed("S] here", final=True).content == " [TOOLS] here"


def test_mistral_short_call_ids():
    from app.tool_calls.mistral import short_call_id

    assert short_call_id("a1B2c3D4e") == "a1B2c3D4e"  # already Mistral's form
    ids = {short_call_id(f"call_{i}") for i in range(1000)}
    assert len(ids) == 1000 and all(len(i) == 9 and i.isalnum() for i in ids)
    assert short_call_id("call_7") == short_call_id("call_7")


def _stream(parser, pieces: list[str]) -> tuple[str, list[dict]]:
    stream = ToolCallStream(parser)
    content, calls = "", []
    for i, piece in enumerate(pieces):
        delta = stream.feed(piece, final=i == len(pieces) - 1)
        content += delta.content
        for entry in delta.tool_calls:
            if "id" in entry:  # the announcement: once per call, in order
                assert entry["index"] == len(calls) and entry["type"] == "function"
                calls.append({"name": entry["function"]["name"], "arguments": ""})
            else:
                assert set(entry) == {"index", "function"}
            calls[entry["index"]]["arguments"] += entry["function"]["arguments"]
    return content, calls
