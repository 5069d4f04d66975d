"""What a request says about tools: OpenAI's `tools`, `tool_choice` and `parallel_tool_calls`
checked and turned into a `ToolRequest`, and the assistant `tool_calls` of a history checked.

Every refusal is a `ToolSpecError` naming the field it is about in OpenAI's path form
(`tools[0].function.parameters`, `tool_choice`, `messages[2].tool_calls[0].function.arguments`);
the API turns it into a 400 with that `param`, the offline API raises it as the ValueError it is.
A function's parameters schema is compiled by the grammar engine here, so a schema the engine
cannot enforce is refused before anything is queued.
"""
from __future__ import annotations

import enum
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from framework.engine.structured import check_constraint
from shared import StructuredOutputsParams

# OpenAI's rule for function names
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ANY_OBJECT: dict[str, Any] = {"type": "object"}  # a function without `parameters` takes any object


class ToolSpecError(ValueError):
    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


class ToolChoiceMode(enum.Enum):
    AUTO = "auto"  # the model decides; its output is parsed for calls
    NONE = "none"  # no tools rendered, no parsing: a plain answer
    REQUIRED = "required"  # one or more calls, enforced by the grammar
    NAMED = "named"  # exactly the named function, enforced by the grammar


_CHOICE_WORDS = ("auto", "none", "required")


@dataclass(frozen=True, slots=True)
class FunctionTool:
    name: str
    description: str | None
    parameters: dict[str, Any]  # a JSON schema for the arguments object
    definition: dict[str, Any]  # the tool as the client sent it ({"type": "function", ...})


@dataclass(frozen=True, slots=True)
class ToolRequest:
    tools: tuple[FunctionTool, ...]
    mode: ToolChoiceMode
    named: str | None  # the function `tool_choice` names (mode NAMED)
    parallel: bool  # more than one call in an answer (OpenAI's default: true)

    @property
    def rendered(self) -> list[dict[str, Any]] | None:
        """The tool definitions the prompt shows the model; None with tool_choice "none"."""
        if self.mode is ToolChoiceMode.NONE or not self.tools:
            return None
        return [tool.definition for tool in self.tools]

    @property
    def forced(self) -> tuple[FunctionTool, ...]:
        """The functions the grammar allows when the choice is enforced (empty when it is not)."""
        if self.mode is ToolChoiceMode.REQUIRED:
            return self.tools
        if self.mode is ToolChoiceMode.NAMED:
            return tuple(t for t in self.tools if t.name == self.named)
        return ()

    @property
    def parses_calls(self) -> bool:
        return self.rendered is not None


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str  # call_...
    name: str
    arguments: str  # a JSON object's text, as the model wrote it

    def to_openai(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function",
                "function": {"name": self.name, "arguments": self.arguments}}


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def parse_tool_request(tools: Sequence[Any] | None, tool_choice: Any = None,
                       parallel_tool_calls: bool | None = None) -> ToolRequest | None:
    """The request's tools, checked (ToolSpecError); None when it has none and no choice."""
    if tools is not None and not isinstance(tools, (list, tuple)):
        raise ToolSpecError("tools must be a list of function tools", "tools")
    functions = tuple(_function_tool(tool, i) for i, tool in enumerate(tools or ()))
    names = [f.name for f in functions]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise ToolSpecError(f"tools: the function name {duplicate!r} is given twice", "tools")
    if not functions:
        if tool_choice not in (None, "none"):
            raise ToolSpecError("tool_choice needs tools: the request has none", "tool_choice")
        return None
    mode, named = _tool_choice(tool_choice, names)
    return ToolRequest(functions, mode, named, parallel_tool_calls is not False)


def check_history_tool_calls(tool_calls: Any, where: str) -> list[dict[str, Any]]:
    """An assistant message's `tool_calls`, checked; `where` is its path (messages[3])."""
    param = f"{where}.tool_calls"
    if not isinstance(tool_calls, (list, tuple)):
        raise ToolSpecError(f"{param} must be a list of function calls", param)
    for i, call in enumerate(tool_calls):
        at = f"{param}[{i}]"
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping) or call.get("type", "function") != "function":
            raise ToolSpecError(f"{at} must be {{\"id\", \"type\": \"function\", \"function\": "
                                f"{{\"name\", \"arguments\"}}}}", at)
        if not isinstance(function.get("name"), str) or not function["name"]:
            raise ToolSpecError(f"{at}.function.name must be a non-empty string",
                                f"{at}.function.name")
        arguments = function.get("arguments")
        if not isinstance(arguments, (str, Mapping)):
            raise ToolSpecError(f"{at}.function.arguments must be a JSON object's text",
                                f"{at}.function.arguments")
    return [dict(call) for call in tool_calls]


def _function_tool(tool: Any, index: int) -> FunctionTool:
    at = f"tools[{index}]"
    if not isinstance(tool, Mapping) or tool.get("type") != "function":
        raise ToolSpecError(f"{at} must be {{\"type\": \"function\", \"function\": {{...}}}} "
                            f"(only function tools are supported)", f"{at}.type")
    function = tool.get("function")
    if not isinstance(function, Mapping):
        raise ToolSpecError(f"{at}.function must be an object with a name", f"{at}.function")
    name = function.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ToolSpecError(f"{at}.function.name must be 1-64 letters, digits, '_' or '-', got "
                            f"{name!r}", f"{at}.function.name")
    description = function.get("description")
    if description is not None and not isinstance(description, str):
        raise ToolSpecError(f"{at}.function.description must be a string",
                            f"{at}.function.description")
    parameters = function.get("parameters")
    parameters = ANY_OBJECT if parameters is None else parameters
    _check_parameters(parameters, f"{at}.function.parameters")
    return FunctionTool(name, description, dict(parameters), _plain(tool))


def _check_parameters(parameters: Any, param: str) -> None:
    if not isinstance(parameters, Mapping):
        raise ToolSpecError(f"{param} must be a JSON schema object", param)
    if parameters.get("type", "object") != "object":
        raise ToolSpecError(f"{param} must describe an object (\"type\": \"object\"), got "
                            f"{parameters.get('type')!r}", param)
    try:
        check_constraint(StructuredOutputsParams(json=dict(parameters)))
    except ValueError as e:
        raise ToolSpecError(f"{param}: {e}", param) from e


def _tool_choice(choice: Any, names: list[str]) -> tuple[ToolChoiceMode, str | None]:
    if choice is None:
        return ToolChoiceMode.AUTO, None
    if isinstance(choice, str):
        if choice not in _CHOICE_WORDS:
            raise ToolSpecError(f"tool_choice must be 'auto', 'none', 'required' or "
                                f"{{\"type\": \"function\", \"function\": {{\"name\": ...}}}}, "
                                f"got {choice!r}", "tool_choice")
        return ToolChoiceMode(choice), None
    function = choice.get("function") if isinstance(choice, Mapping) else None
    if not isinstance(function, Mapping) or choice.get("type") != "function":
        raise ToolSpecError("tool_choice as an object must be {\"type\": \"function\", "
                            "\"function\": {\"name\": ...}}", "tool_choice")
    name = function.get("name")
    if name not in names:
        raise ToolSpecError(f"tool_choice names the function {name!r}, which is not among the "
                            f"tools ({', '.join(names)})", "tool_choice")
    return ToolChoiceMode.NAMED, name


def _plain(value: Any) -> Any:
    """A JSON-safe deep copy (the template and the prompt see plain dicts and lists)."""
    return json.loads(json.dumps(value))
