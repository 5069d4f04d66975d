"""Tools and tool-call history into the messages a chat template renders.

A template with its own tool section (`formats.template_tools(...).native`) gets the tool
definitions as `tools=` and the history as OpenAI sends it, except that a call's `arguments` are
handed over as an object (the Llama 3.1 and Qwen2.5 templates write `arguments | tojson`), and
a Mistral template gets call ids in its own 9-character form (`mistral.short_call_id`).

Any other template gets the Hermes layout in plain messages, so every model can be asked:

- the tools are listed in a system message (appended to the first system message, or a new one
  in front), one function definition as JSON per line between `<tools>` and `</tools>`, then
  the call shape;
- an assistant turn's calls become its content, one
  `<tool_call>\\n{"name": .., "arguments": {..}}\\n</tool_call>` each (what the model is asked
  to write, and what the grammar writes for a forced choice);
- tool results become a user turn of `<tool_response>\\n...\\n</tool_response>` blocks
  (consecutive results share one turn), since such templates know no `tool` role.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from app.tool_calls.formats import ToolFormat, template_tools
from app.tool_calls.hermes import CLOSE, OPEN
from app.tool_calls.mistral import with_short_call_ids

# Kept short: small models have small contexts (the demo model's is 512 tokens, and JSON costs
# about a token per character in its vocabulary).
TOOLS_HEADER = "# Tools\nFunctions you may call:\n<tools>\n"
CALL_HELP = ("\n</tools>\nCall one as:\n" + OPEN + '\n{"name": ..., "arguments": {...}}\n'
             + CLOSE)


def prompt_messages(template: str | None, messages: Sequence[dict],
                    tools: list[dict] | None) -> tuple[list[dict], list[dict] | None]:
    """(the messages to render, the `tools=` to give the template: None when they are already
    in the messages or there are none)."""
    template_format = template_tools(template)
    if template_format.native:
        native = native_messages(messages)
        if template_format.format is ToolFormat.MISTRAL:
            native = with_short_call_ids(native)
        return native, tools or None
    return fallback_messages(messages, tools), None


def native_messages(messages: Sequence[dict]) -> list[dict]:
    """The history for a template with a tool section: calls' arguments as objects."""
    return [{**m, "tool_calls": [_arguments_as_object(c) for c in m["tool_calls"]]}
            if m.get("tool_calls") else dict(m) for m in messages]


def fallback_messages(messages: Sequence[dict], tools: list[dict] | None) -> list[dict]:
    """The history (and tools) in the Hermes layout, as plain role/content messages."""
    result: list[dict] = []
    for message in messages:
        role = message.get("role")
        if role == "tool":
            block = f"<tool_response>\n{message.get('content') or ''}\n</tool_response>"
            if result and result[-1].get("tool_results"):
                result[-1]["content"] += "\n" + block
            else:
                result.append({"role": "user", "content": block, "tool_results": True})
        elif role == "assistant" and message.get("tool_calls"):
            result.append(with_calls_as_text(message))
        else:
            result.append(dict(message))
    for message in result:
        message.pop("tool_results", None)
    return _with_tools_section(result, tools) if tools else result


def tools_section(tools: list[dict]) -> str:
    """The system text listing `tools`: each function's definition (name, description,
    parameters) as one JSON line, then the call shape."""
    lines = "\n".join(json.dumps(tool.get("function", tool), ensure_ascii=False) for tool in tools)
    return TOOLS_HEADER + lines + CALL_HELP


def call_text(name: str, arguments: Any) -> str:
    """One call as the Hermes format writes it."""
    if isinstance(arguments, str):
        arguments = _loads_or_text(arguments)
    body = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return f"{OPEN}\n{body}\n{CLOSE}"


def with_calls_as_text(message: dict) -> dict:
    """An assistant message with its `tool_calls` written into its content (Hermes blocks)."""
    calls = [call_text(c["function"]["name"], c["function"].get("arguments", {}))
             for c in message["tool_calls"]]
    content = message.get("content") or ""
    text = "\n".join([content, *calls] if content else calls)
    return {key: value for key, value in message.items() if key != "tool_calls"} | {
        "content": text}


def _with_tools_section(messages: list[dict], tools: list[dict]) -> list[dict]:
    section = tools_section(tools)
    if messages and messages[0].get("role") == "system":
        first = messages[0]
        content = first.get("content") or ""
        return [{**first, "content": f"{content}\n\n{section}" if content else section},
                *messages[1:]]
    return [{"role": "system", "content": section}, *messages]


def _arguments_as_object(call: dict) -> dict:
    function = call.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
        return call
    return {**call, "function": {**function,
                                 "arguments": _loads_or_text(function["arguments"])}}


def _loads_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text  # shown as the client sent it
