"""`tool_choice` "required" or a named function -> the grammar that makes the answer exactly
that: one call (or several, with parallel_tool_calls) in the model's format, each call's
arguments valid for its function's parameters schema.

It is an xgrammar structural tag (`shared.StructuredOutputsParams.structural_tag`), enforced by
the same engine path as `response_format`: one tag per allowed function (its opening text names
the function, its content is the parameters schema), joined by the format's separator.
"""
from __future__ import annotations

from app.tool_calls.formats import ToolFormat, call_list, call_separator, call_tag
from app.tool_calls.spec import ToolChoiceMode, ToolRequest
from shared import StructuredOutputsParams


def forced_calls_constraint(request: ToolRequest,
                            tool_format: ToolFormat) -> StructuredOutputsParams | None:
    """The constraint for an enforced choice; None for "auto" and "none"."""
    functions = request.forced
    if not functions:
        return None
    tags = []
    for function in functions:
        begin, end = call_tag(tool_format, function.name)
        tags.append({"type": "tag", "begin": begin, "end": end,
                     "content": {"type": "json_schema", "json_schema": function.parameters}})
    calls = {"type": "tags_with_separator", "tags": tags,
             "separator": call_separator(tool_format), "at_least_one": True,
             # a named choice is one call of it, as OpenAI's
             "stop_after_first": not request.parallel or request.mode is ToolChoiceMode.NAMED}
    opening, closing = call_list(tool_format)
    if opening or closing:
        calls = {"type": "sequence", "elements": [
            {"type": "const_string", "value": opening}, calls,
            {"type": "const_string", "value": closing}]}
    return StructuredOutputsParams(structural_tag={"type": "structural_tag", "format": calls})
