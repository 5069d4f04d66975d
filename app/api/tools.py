"""A chat request's tools, history and template variables, checked for the chat route: OpenAI's
`tools` / `tool_choice` / `parallel_tool_calls` -> a `ToolPlan` (app/tool_calls), the messages
as the chat template gets them (assistant `tool_calls`, a tool result's `tool_call_id`), and the
grammar of a forced call added to the sampling params. Every refusal is a 400 naming its field.
"""
from __future__ import annotations

import dataclasses

from app.api.errors import APIError
from app.api.schemas.openai import ChatCompletionRequest
from app.tool_calls import ToolPlan, ToolSpecError, check_history_tool_calls, parse_tool_request
from app.tool_calls.prompt import with_calls_as_text
from shared import SamplingParams


def tool_plan(body: ChatCompletionRequest, tokenizer) -> ToolPlan:
    try:
        request = parse_tool_request(body.tools, body.tool_choice, body.parallel_tool_calls)
    except ToolSpecError as e:
        raise APIError(400, str(e), param=e.param, code="invalid_value") from e
    return ToolPlan.for_tokenizer(tokenizer, request)


def template_messages(body: ChatCompletionRequest) -> list[dict]:
    """The conversation as plain dicts for the template: role ("developer" is "system"),
    content as text, and the tool-call fields OpenAI's history carries."""
    messages = []
    for index, m in enumerate(body.messages):
        message = {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
        if m.tool_calls:
            try:
                message["tool_calls"] = check_history_tool_calls(m.tool_calls,
                                                                  f"messages[{index}]")
            except ToolSpecError as e:
                raise APIError(400, str(e), param=e.param, code="invalid_value") from e
        if m.role == "tool":
            message |= {k: v for k, v in (("tool_call_id", m.tool_call_id), ("name", m.name))
                        if v is not None}
        messages.append(message)
    return messages


def stored_messages(messages: list[dict]) -> list[dict]:
    """The conversation as the store keeps it (role and content): an assistant turn's calls
    written into its content as Hermes `<tool_call>` blocks, so a stored history keeps them."""
    return [with_calls_as_text(m) if m.get("tool_calls") else m for m in messages]


def with_forced_calls(params: SamplingParams, plan: ToolPlan) -> SamplingParams:
    """`params` with the grammar of tool_choice "required" / a named function, if any, and
    special tokens kept in the text when the format's call marker is one (Mistral)."""
    if plan.keeps_special_tokens:
        params = dataclasses.replace(params, skip_special_tokens=False)
    constraint = plan.constraint()
    if constraint is None:
        return params
    if params.structured_outputs is not None:
        raise APIError(400, "tool_choice forces a function call, and another field "
                            "(response_format or a guided_* extra) constrains the output too; "
                            "send one", param="tool_choice", code="invalid_value")
    return dataclasses.replace(params, structured_outputs=constraint)
