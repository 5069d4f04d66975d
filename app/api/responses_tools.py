"""Function tools on /v1/responses, through the chat route's machinery (app/tool_calls).

The Responses API spells tools flat (`{"type": "function", "name", "description", "parameters",
"strict"}`), a named `tool_choice` as `{"type": "function", "name"}`, earlier calls as
`function_call` input items and their results as `function_call_output` items. They are turned
into chat's shapes here, so the prompt, the grammar of `required` / a named choice and the parser
of the answer are exactly those of /v1/chat/completions; a refusal names the field as this
endpoint spells it (`tools[0].parameters`, `input[2].arguments`).
"""
from __future__ import annotations

import json
from typing import Any

from app.api.errors import APIError
from app.api.schemas.responses import FunctionCallItem, InputMessage, ResponsesRequest
from app.tool_calls import ToolPlan, ToolSpecError, check_history_tool_calls, parse_tool_request


def tool_plan(body: ResponsesRequest, tokenizer) -> ToolPlan:
    """The request's tools on this model (a plan with no request when it has none)."""
    tools = None if body.tools is None else [_chat_tool(t, i) for i, t in enumerate(body.tools)]
    try:
        request = parse_tool_request(tools, _chat_choice(body.tool_choice),
                                     body.parallel_tool_calls)
    except ToolSpecError as e:
        raise APIError(400, _responses_words(str(e)), param=_responses_words(e.param),
                       code="invalid_value") from e
    return ToolPlan.for_tokenizer(tokenizer, request)


def input_messages(body: ResponsesRequest) -> list[dict]:
    """`input` as chat messages: developer is system, consecutive function_call items are one
    assistant turn with tool_calls, a function_call_output is a tool message."""
    messages: list[dict] = []
    for index, item in enumerate(body.items()):
        if isinstance(item, InputMessage):
            role = "system" if item.role == "developer" else item.role
            messages.append({"role": role, "content": item.text()})
        elif isinstance(item, FunctionCallItem):
            call = _checked_call(item, index)
            if messages and messages[-1].get("tool_calls") and not messages[-1]["content"]:
                messages[-1]["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": "", "tool_calls": [call]})
        else:
            messages.append({"role": "tool", "content": item.output,
                             "tool_call_id": item.call_id})
    return messages


def stored_content(message: dict) -> str:
    """What the store keeps of a message: its text, or for a turn that only called tools the
    calls as JSON (the store has no tool-call columns)."""
    if message.get("tool_calls") and not message["content"]:
        return json.dumps([c["function"] for c in message["tool_calls"]], ensure_ascii=False)
    return message["content"]


def _chat_tool(tool: dict[str, Any], index: int) -> dict[str, Any]:
    if tool.get("type") != "function":
        raise APIError(400, f"tools[{index}].type must be 'function' (built-in tools such as "
                            f"{tool.get('type')!r} are not available here)",
                       param=f"tools[{index}].type", code="invalid_value")
    function = {k: v for k, v in tool.items() if k != "type"}
    return {"type": "function", "function": function}


def _chat_choice(choice: Any) -> Any:
    if isinstance(choice, dict) and choice.get("type") == "function" and "name" in choice:
        return {"type": "function", "function": {"name": choice["name"]}}
    return choice


def _checked_call(item: FunctionCallItem, index: int) -> dict[str, Any]:
    call = {"id": item.call_id, "type": "function",
            "function": {"name": item.name, "arguments": item.arguments}}
    try:
        return check_history_tool_calls([call], f"input[{index}]")[0]
    except ToolSpecError as e:
        raise APIError(400, str(e), param=f"input[{index}].arguments",
                       code="invalid_value") from e


def _responses_words(text: str) -> str:
    # chat nests a tool's fields under "function"; this endpoint does not
    return text.replace(".function.", ".").replace("tool_choice.function.", "tool_choice.")
