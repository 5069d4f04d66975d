"""The demo corpus's tool-use conversations: rendered exactly as the server renders the same
request, and their numbers right by Python's own arithmetic."""
from __future__ import annotations

import json
import random

from app.demo.corpus import TOOL_USE, generate_corpus, sample_turn
from app.demo.tokenizer_builder import CHATML_TEMPLATE
from app.demo.tool_use import PLAIN_WEIGHTS, rendered_tool_conversation, tool_conversation
from app.tool_calls.prompt import prompt_messages

_UNIT_SIZE = {"millimeters": 0.001, "centimeters": 0.01, "meters": 1, "kilometers": 1000,
              "grams": 1, "kilograms": 1000, "seconds": 1, "minutes": 60, "hours": 3600,
              "days": 86400, "weeks": 604800}


def _plain(rng):
    return sample_turn(rng, weights=PLAIN_WEIGHTS)[1]


def test_a_tool_conversation_is_rendered_as_the_server_renders_the_request():
    for seed in range(20):
        messages, tools = tool_conversation(random.Random(seed), _plain)
        server_side, template_tools = prompt_messages(CHATML_TEMPLATE, messages, tools)
        assert template_tools is None  # ChatML has no tool section: the Hermes layout
        assert rendered_tool_conversation(random.Random(seed), _plain) == server_side


def test_calls_are_right_and_answers_carry_the_result():
    calls = 0
    for seed in range(200):
        messages, _ = tool_conversation(random.Random(seed), _plain)
        if len(messages) == 2:  # no tool helps: a plain answer
            continue
        function = messages[1]["tool_calls"][0]["function"]
        arguments, result = json.loads(function["arguments"]), messages[2]["content"]
        if function["name"] == "calculator":
            if " / 0 * " in arguments["expression"]:  # the model's slip the corpus shows
                assert result == "error: division by zero"
                assert "could not answer: division by zero" in messages[3]["content"]
                continue
            a, op, b = arguments["expression"].split()
            expected = {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b),
                        "/": int(a) // int(b)}[op]
            assert op != "/" or int(a) % int(b) == 0
        else:
            expected = arguments["value"] * _UNIT_SIZE[arguments["from_unit"]] / _UNIT_SIZE[
                arguments["to_unit"]]
        assert abs(float(result) - expected) <= 1e-6 * max(1, abs(expected)), (arguments, result)
        assert result in messages[3]["content"]
        calls += 1
    assert calls > 100


def test_the_corpus_mixes_in_tool_conversations_only_by_weight():
    corpus = generate_corpus(400, seed=3, weights={"arithmetic": 2.0, "dates": 2.0, TOOL_USE: 1.0})
    with_tools = [c for c in corpus if c[0]["content"].startswith("# Tools")]
    assert 40 < len(with_tools) < 130  # a fifth by weight (80 expected)
    for weights in (None, {"arithmetic": 1.0, TOOL_USE: 0.0}):  # the default mix has none
        none = generate_corpus(200, seed=3, weights=weights)
        assert not any("<tool_call>" in m["content"] for c in none for m in c)
