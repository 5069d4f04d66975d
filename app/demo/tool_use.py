"""Tool-use conversations for the demo corpus: the model learns to call the demo's calculator and
unit converter (`app.demo.tools`) in the Hermes format, read the result and answer with it.

A conversation is written as an OpenAI client sends it (`tools`, assistant `tool_calls`, `tool`
results) and then rendered by `app.tool_calls.prompt.fallback_messages`: exactly the layout the
server gives a template without a tool section (the demo's ChatML), so what the model is trained
on is what it is shown at serving time. Deterministic for a given `rng`.

Four kinds, so the model learns when to call and when not to:
- a calculation too big to do in its head -> a `calculator` call, then "a * b = result.";
- a unit conversion -> a `convert_units` call, then "n big is result small.";
- a question the tools do not help with (greeting, dates, capitals...) -> the usual answer;
- a tool result that is an error -> the model says so instead of inventing a number.
"""
from __future__ import annotations

import json
import random

from app.demo.tools import CALCULATOR, CONVERT_UNITS, run_tool

_OPS = (("plus", "+"), ("minus", "-"), ("times", "*"), ("divided by", "/"))
_UNIT_PAIRS = (("meters", "centimeters"), ("kilometers", "meters"), ("kilograms", "grams"),
               ("hours", "minutes"), ("minutes", "seconds"), ("days", "hours"),
               ("weeks", "days"), ("meters", "millimeters"), ("kilometers", "centimeters"))


def _operands(rng: random.Random, op: str) -> tuple[int, int]:
    if op == "/":  # exact quotients: the answer is a number the model copies, not a long float
        b = rng.randint(2, 40)
        return b * rng.randint(2, 250), b
    a = rng.randint(13, 9999)
    b = rng.randint(2, 99) if op == "*" else rng.randint(1, 9999)
    return (max(a, b), min(a, b)) if op == "-" else (a, b)


def _calculation(rng: random.Random) -> tuple[str, str, dict]:
    word, symbol = rng.choice(_OPS)
    a, b = _operands(rng, symbol)
    user = rng.choice((f"What is {a} {word} {b}?", f"What is {a} {symbol} {b}?",
                       f"Compute {a} {symbol} {b}.", f"How much is {a} {word} {b}?",
                       f"Calculate {a} {word} {b}.", f"Use the calculator: {a} {symbol} {b}"))
    expression = f"{a} {symbol} {b}"
    return user, expression, {"name": "calculator", "arguments": {"expression": expression}}


def _conversion(rng: random.Random) -> tuple[str, str, dict]:
    big, small = rng.choice(_UNIT_PAIRS)
    if rng.random() < 0.25:  # the other way round as well
        big, small = small, big
    value: int | float = rng.randint(1, 500)
    if rng.random() < 0.2:
        value += 0.5
    user = rng.choice((f"How many {small} are in {value} {big}?",
                       f"Convert {value} {big} to {small}.", f"What is {value} {big} in {small}?"))
    call = {"name": "convert_units",
            "arguments": {"value": value, "from_unit": big, "to_unit": small}}
    return user, f"{value} {big}", call


def _tools(rng: random.Random, needed: str | None) -> list[dict]:
    """Both tools in either order, or only the one needed."""
    tools = [CALCULATOR, CONVERT_UNITS]
    rng.shuffle(tools)
    if needed is not None and rng.random() < 0.2:
        tools = [t for t in tools if t["function"]["name"] == needed]
    return tools


def _final_answer(call: dict, subject: str, result: str) -> str:
    if result.startswith("error:"):
        return f"The {call['name']} tool could not answer: {result[len('error:'):].strip()}"
    if call["name"] == "calculator":
        return f"{subject} = {result}."
    return f"{subject} is {result} {call['arguments']['to_unit']}."


def tool_conversation(rng: random.Random, plain_turn,
                      kind: str | None = None) -> tuple[list[dict], list[dict]]:
    """(messages as an OpenAI client sends them, the tools offered). `plain_turn(rng)` gives a
    (user, assistant) turn the tools do not help with; `kind` (calc, convert, plain, error) is
    drawn when not given."""
    kind = kind or rng.choices(("calc", "convert", "plain", "error"), weights=(4, 3, 2, 0.5))[0]
    if kind == "plain":
        user, answer = plain_turn(rng)
        return ([{"role": "user", "content": user}, {"role": "assistant", "content": answer}],
                _tools(rng, None))
    if kind == "convert":
        user, subject, call = _conversion(rng)
    else:
        user, subject, call = _calculation(rng)
        if kind == "error":
            call["arguments"]["expression"] = subject.replace(" / ", " / 0 * ")  # a model slip
            subject = call["arguments"]["expression"]
    result = run_tool(call["name"], call["arguments"])
    call_id = f"call_{rng.randrange(16**8):08x}"
    messages = [
        {"role": "user", "content": user},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": call_id, "type": "function",
            "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])}}]},
        {"role": "tool", "tool_call_id": call_id, "content": result},
        {"role": "assistant", "content": _final_answer(call, subject, result)},
    ]
    return messages, _tools(rng, call["name"])


def rendered_tool_conversation(rng: random.Random, plain_turn) -> list[dict]:
    """A tool conversation as the plain role/content messages the server renders."""
    from app.tool_calls.prompt import fallback_messages

    messages, tools = tool_conversation(rng, plain_turn)
    return fallback_messages(messages, tools)


def tool_eval_cases(count: int, seed: int) -> dict[str, list]:
    """Fresh tool-use checks, `count` each, as `model.evaluation.EvalCase`s (right when the answer
    contains `expected`):
    - call: the tools and a calculation or conversion -> exactly the right call;
    - answer: the same after the tool's result -> the answer carrying the result;
    - plain: the tools and a question they do not help with -> the usual answer, no call."""
    from app.demo.corpus import sample_turn
    from app.tool_calls.prompt import call_text, fallback_messages
    from model.evaluation import EvalCase

    rng = random.Random(seed)
    plain_turn = lambda r: sample_turn(r, weights=PLAIN_WEIGHTS)[1]  # noqa: E731
    cases: dict[str, list] = {"call": [], "answer": [], "plain": []}
    for i in range(count):
        messages, tools = tool_conversation(rng, plain_turn, ("calc", "convert")[i % 2])
        function = messages[1]["tool_calls"][0]["function"]
        cases["call"].append(EvalCase(fallback_messages(messages[:1], tools),
                                      call_text(function["name"], function["arguments"])))
        cases["answer"].append(EvalCase(fallback_messages(messages[:3], tools),
                                        messages[3]["content"]))
        messages, tools = tool_conversation(rng, plain_turn, "plain")
        cases["plain"].append(EvalCase(fallback_messages(messages[:1], tools),
                                       messages[1]["content"]))
    return cases


# What a tool-offering chat asks besides calculations: the families the tools do not help with.
PLAIN_WEIGHTS = {"greeting": 1.0, "dates": 1.0, "capital": 1.0, "flywheel_faq": 1.0,
                 "copying": 1.0}
