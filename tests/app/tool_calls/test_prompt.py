"""Rendering tools and tool-call history. A template with its own tool section renders them
exactly as transformers' `apply_chat_template(messages, tools=...)` does (the reference, given
arguments as objects, which is what such templates expect); a template without one (the demo
model's) gets the documented Hermes layout, checked as golden text."""
from __future__ import annotations

import json
import re

import pytest

from app.demo.recipe import DEMO_MODEL_DIR
from app.serving.chat_template import render_prompt_ids
from app.tool_calls import ToolFormat, template_tools
from model.chat_template import TemplateKwargsError
from model.tokenizer import Tokenizer
from tests.app.tool_calls.templates import (HERMES_TEMPLATE, LLAMA3_TEMPLATE, MISTRAL_TEMPLATE,
                                           random_checkpoint)

TOOLS = [{"type": "function", "function": {
    "name": "add", "description": "Add two <whole> numbers",
    "parameters": {"type": "object", "properties": {"a": {"type": "integer"},
                                                    "b": {"type": "integer"}},
                   "required": ["a", "b"]}}}]
HISTORY = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is 2 plus 3?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "5"},
    {"role": "user", "content": "Thanks"},
]


def _as_transformers_wants(messages: list[dict]) -> list[dict]:
    """OpenAI's history with each call's arguments as an object (transformers' convention)."""
    result = []
    for m in messages:
        m = {k: v for k, v in m.items() if v is not None}
        if "tool_calls" in m:
            m["tool_calls"] = [{**c, "function": {**c["function"], "arguments": json.loads(
                c["function"]["arguments"])}} for c in m["tool_calls"]]
        result.append(m)
    return result


@pytest.mark.parametrize(("template", "tool_format"), [(HERMES_TEMPLATE, ToolFormat.HERMES),
                                                      (LLAMA3_TEMPLATE, ToolFormat.LLAMA3_JSON),
                                                      (MISTRAL_TEMPLATE, ToolFormat.MISTRAL)],
                         ids=["hermes", "llama3", "mistral"])
@pytest.mark.parametrize("kwargs", [{}, {"hint": "Use the tools."}], ids=["plain", "kwargs"])
def test_native_tool_section_matches_transformers(tmp_path, template, tool_format, kwargs):
    from transformers import AutoTokenizer

    directory = random_checkpoint(tmp_path / "model", template)
    ours = Tokenizer.from_dir(directory)
    assert template_tools(ours.chat_template).native
    assert template_tools(ours.chat_template).format is tool_format
    reference = AutoTokenizer.from_pretrained(directory)
    history = _as_transformers_wants(HISTORY)
    if tool_format is ToolFormat.MISTRAL:
        history = _with_mistral_ids(history, reference, kwargs)
    expected = reference.apply_chat_template(history, tools=TOOLS, tokenize=False,
                                             add_generation_prompt=True, **kwargs)
    assert "Add two <whole> numbers" in expected and '"a": 2' in expected
    ids = render_prompt_ids(ours, HISTORY, TOOLS, kwargs or None)
    assert ids == ours.encode(expected, add_bos=False)
    if kwargs and tool_format is ToolFormat.HERMES:  # the variable reached the template
        assert ids != render_prompt_ids(ours, HISTORY, TOOLS)


def _with_mistral_ids(history: list[dict], reference, kwargs: dict) -> list[dict]:
    """The history with OpenAI's call id ("call_1") replaced by the 9-character id our rendering
    gives it, read from our rendering; transformers refuses the OpenAI id, as Mistral's template
    does."""
    with pytest.raises(Exception, match="length 9"):
        reference.apply_chat_template(history, tools=TOOLS, tokenize=False, **kwargs)
    ours = render_prompt_ids(Tokenizer.from_dir(reference.name_or_path), HISTORY, TOOLS)
    text = reference.decode(ours)
    ids = re.findall(r'"id": "([A-Za-z0-9]{9})"', text)
    assert len(ids) == 1 and f'"call_id": "{ids[0]}"' in text  # the call and its result agree
    history = json.loads(json.dumps(history))
    history[2]["tool_calls"][0]["id"] = history[3]["tool_call_id"] = ids[0]
    return history


def test_mistral_forced_call_grammar_writes_what_the_parser_reads():
    """The grammar's fixed text around the arguments (a v3 list after the marker) parses back
    into the call, once and several times over."""
    from app.tool_calls.constraint import forced_calls_constraint
    from app.tool_calls.formats import parser_for
    from app.tool_calls.parsing import message_from
    from app.tool_calls.spec import parse_tool_request

    tag = forced_calls_constraint(parse_tool_request(TOOLS, "required"),
                                  ToolFormat.MISTRAL).structural_tag["format"]
    opening, calls, closing = (element for element in tag["elements"])
    begin, end = calls["tags"][0]["begin"], calls["tags"][0]["end"]
    one = f'{begin}{{"a": 2, "b": 3}}{end}'
    for written in (one, one + calls["separator"] + one):
        text = opening["value"] + written + closing["value"]
        message = message_from(parser_for(ToolFormat.MISTRAL), text)
        assert message.content is None
        assert [(c.name, json.loads(c.arguments)) for c in message.tool_calls] == [
            ("add", {"a": 2, "b": 3})] * written.count(begin)


def test_fallback_layout_golden():
    tokenizer = Tokenizer.from_dir(DEMO_MODEL_DIR)
    assert not template_tools(tokenizer.chat_template).native
    text = tokenizer.decode(render_prompt_ids(tokenizer, HISTORY, TOOLS),
                            skip_special_tokens=False)
    function = json.dumps(TOOLS[0]["function"])
    assert text == (
        "<|im_start|>system\nBe brief.\n\n# Tools\nFunctions you may call:\n<tools>\n"
        f"{function}\n</tools>\nCall one as:\n<tool_call>\n"
        '{"name": ..., "arguments": {...}}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\nWhat is 2 plus 3?<|im_end|>\n"
        '<|im_start|>assistant\n<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n'
        "</tool_call><|im_end|>\n"
        "<|im_start|>user\n<tool_response>\n5\n</tool_response><|im_end|>\n"
        "<|im_start|>user\nThanks<|im_end|>\n<|im_start|>assistant\n")


def test_fallback_without_tools_renders_history_only():
    tokenizer = Tokenizer.from_dir(DEMO_MODEL_DIR)
    text = tokenizer.decode(render_prompt_ids(tokenizer, HISTORY[1:]), skip_special_tokens=False)
    assert text.startswith("<|im_start|>user\nWhat is 2 plus 3?")
    assert "<tools>" not in text and "<tool_response>\n5\n</tool_response>" in text


@pytest.mark.parametrize("name", ["messages", "tools", "add_generation_prompt", "eos_token"])
def test_template_kwargs_cannot_replace_what_rendering_sets(name):
    tokenizer = Tokenizer.from_dir(DEMO_MODEL_DIR)
    with pytest.raises(TemplateKwargsError, match=name):
        render_prompt_ids(tokenizer, HISTORY[1:2], None, {name: "x"})
