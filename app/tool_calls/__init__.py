"""Tool calling (OpenAI's `tools` / `tool_choice`): checking a request's tools, rendering them
through the model's chat template (or the Hermes layout), forcing a call with a grammar, and
reading calls back out of an answer, whole or as stream deltas. One parser per format
(`hermes`, `llama3_json`, `mistral`). Knows nothing about HTTP: the API and `LLM.chat` both use it.
"""
from app.tool_calls.formats import ToolFormat, template_tools
from app.tool_calls.parsing import ParsedMessage
from app.tool_calls.plan import ToolPlan
from app.tool_calls.spec import (ToolCall, ToolChoiceMode, ToolRequest, ToolSpecError,
                                 check_history_tool_calls, parse_tool_request)
from app.tool_calls.streaming import StreamDelta, ToolCallStream

__all__ = ["ParsedMessage", "StreamDelta", "ToolCall", "ToolCallStream", "ToolChoiceMode",
           "ToolFormat", "ToolPlan", "ToolRequest", "ToolSpecError", "check_history_tool_calls",
           "parse_tool_request", "template_tools"]
