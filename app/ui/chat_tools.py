"""The chat's demo tools (calculator, unit converter; `app.demo.tools`): what each request of a
tool exchange asks for, the calls of an answer run here, in the UI process, and the history the
next request carries.

An exchange is a few requests: the question with the tools, then (while the answer calls
tools, at most MAX_TOOL_ROUNDS times) the history plus the assistant's calls and one `tool`
message per result. The first request uses the chosen `tool_choice` ("required" makes the model
call before answering); follow-ups leave it to the model ("auto"), and the last one allowed
asks for an answer ("none"), so an exchange always ends in text. Knows nothing about Streamlit.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from app.demo.tools import DEMO_TOOLS, run_tool

MAX_TOOL_ROUNDS = 3  # calls answered per exchange before the model must answer in text
TOGGLE_LABEL = "Tools: calculator, unit converter"


@dataclass(frozen=True, slots=True)
class ToolSettings:
    enabled: bool = False
    first_choice: str = "auto"  # tool_choice of the exchange's first request: "auto" or "required"


def request_fields(settings: ToolSettings, round_index: int) -> dict:
    """The tool fields of request `round_index` (0: the question) of an exchange."""
    if not settings.enabled:
        return {}
    if round_index == 0:
        choice = settings.first_choice
    else:
        choice = "none" if round_index >= MAX_TOOL_ROUNDS else "auto"
    return {"tools": [dict(tool) for tool in DEMO_TOOLS], "tool_choice": choice}


def narrower_fields(fields: dict, called: set[str]) -> dict | None:
    """A follow-up's tool fields with less in the prompt, for when the history has grown past
    the model's context (the demo model has 512 tokens): first only the tools called so far,
    then none ("none" renders no tools); None when nothing is left to drop."""
    if not fields or fields.get("tool_choice") == "none":
        return None
    kept = [tool for tool in fields["tools"] if tool["function"]["name"] in called]
    if kept and len(kept) < len(fields["tools"]):
        return fields | {"tools": kept}
    return fields | {"tool_choice": "none"}


def call_arguments(call: dict) -> dict | str:
    """A call's arguments as an object, or the text as written when it is not one (a call cut
    off by max_tokens)."""
    text = call["function"].get("arguments") or ""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, dict) else text


def run_calls(calls: list[dict]) -> list[dict]:
    """One `tool` message per call, in order: the executor's result, or why it has none."""
    results = []
    for call in calls:
        arguments = call_arguments(call)
        if isinstance(arguments, dict):
            content = run_tool(call["function"]["name"], arguments)
        else:
            content = f"error: the arguments are not a JSON object: {arguments!r}"
        results.append({"role": "tool", "tool_call_id": call["id"], "content": content})
    return results


def assistant_turn(text: str, calls: list[dict]) -> dict:
    """The answer as the next request's history carries it: its content and its calls."""
    return {"role": "assistant", "content": text or None,
            "tool_calls": [{"id": c["id"], "type": "function", "function": dict(c["function"])}
                           for c in calls]}
