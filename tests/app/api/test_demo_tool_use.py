"""The bundled demo model uses the demo's tools (`app.demo.tools`) on its own, through a live
server and the official `openai` client: it calls the calculator or the unit converter with the
right kind of arguments, answers with the tool's result, and leaves the tools alone when they do
not help.

The questions are fresh (numbers drawn here, not from the training corpus' seed); arguments are
checked against the tool's JSON schema and then run."""
from __future__ import annotations

import json
import random

import jsonschema
import openai
import pytest

from app.demo.tools import DEMO_TOOLS, run_tool
from tests.app.api.conftest import demo_model_server

DEMO = "demo"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with demo_model_server(tmp_path_factory.mktemp("data"), DEMO, num_kv_blocks=512,
                           max_num_seqs=16) as url:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)


def _calculations(count: int) -> list[tuple[str, float]]:
    rng = random.Random(20261129)
    out = []
    for _ in range(count):
        a, b = rng.randint(100, 9999), rng.randint(11, 99)
        word, value = rng.choice((("times", a * b), ("plus", a + b), ("minus", a - b)))
        out.append((f"What is {a} {word} {b}?", value))
    return out


def _conversions(count: int) -> list[tuple[str, float]]:
    rng = random.Random(11292026)
    pairs = (("kilometers", "meters", 1000), ("hours", "minutes", 60), ("kilograms", "grams", 1000),
             ("weeks", "days", 7))
    out = []
    for _ in range(count):
        big, small, factor = rng.choice(pairs)
        n = rng.randint(21, 400)
        out.append((f"How many {small} are in {n} {big}?", n * factor))
    return out


def _ask(client, messages):
    return client.chat.completions.create(model=DEMO, messages=messages, tools=DEMO_TOOLS,
                                          temperature=0, max_tokens=64).choices[0]


def _value(result: str) -> float | None:
    try:
        return float(result.split()[0])
    except (ValueError, IndexError):
        return None


@pytest.mark.parametrize(("cases", "function"), [(_calculations(8), "calculator"),
                                                  (_conversions(8), "convert_units")],
                         ids=["calculator", "units"])
def test_the_demo_model_calls_the_right_tool_with_valid_arguments(client, cases, function):
    schema = next(t["function"]["parameters"] for t in DEMO_TOOLS
                  if t["function"]["name"] == function)
    right_values = 0
    for question, expected in cases:
        choice = _ask(client, [{"role": "user", "content": question}])
        assert choice.finish_reason == "tool_calls", (question, choice.message.content)
        call = choice.message.tool_calls[0].function
        assert call.name == function, question
        arguments = json.loads(call.arguments)
        jsonschema.validate(arguments, schema)
        right_values += _value(run_tool(call.name, arguments)) == expected
    # The numbers it copies into the arguments are often out of order ("6697 - 3225" ->
    # "6977 - 3252"): the README's demo-model section has the measured rate. Not asserted.
    print(f"{function}: {right_values} of {len(cases)} calls carry the question's numbers")


def test_after_the_calculator_answers_the_model_answers_with_its_result(client):
    right = 0
    for question, expected in _calculations(8):
        messages = [{"role": "user", "content": question}]
        call = _ask(client, messages).message.tool_calls[0]
        result = run_tool(call.function.name, json.loads(call.function.arguments))
        messages += [{"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
                     {"role": "tool", "tool_call_id": call.id, "content": result}]
        answer = _ask(client, messages)
        right += answer.finish_reason == "stop" and result in (answer.message.content or "")
    assert right >= 5, right  # measured 6 of 8


def test_questions_the_tools_do_not_help_with_get_the_usual_answer(client):
    for question, expected in (("What day comes after Monday?", "Tuesday"),
                               ("Tell me the capital of France.", "Paris"),
                               ("Hello!", "help")):
        choice = _ask(client, [{"role": "user", "content": question}])
        assert choice.finish_reason == "stop" and not choice.message.tool_calls, question
        assert expected in choice.message.content


def test_a_streamed_tool_call_is_the_same_call(client):
    messages = [{"role": "user", "content": "What is 4821 times 37?"}]
    whole = _ask(client, messages).message.tool_calls[0]
    name, arguments = "", ""
    for chunk in client.chat.completions.create(model=DEMO, messages=messages, tools=DEMO_TOOLS,
                                                temperature=0, max_tokens=64, stream=True):
        for delta in chunk.choices[0].delta.tool_calls or []:
            name += delta.function.name or ""
            arguments += delta.function.arguments or ""
    assert (name, json.loads(arguments)) == (whole.function.name,
                                             json.loads(whole.function.arguments))
    assert run_tool(name, json.loads(arguments)) == str(4821 * 37)
