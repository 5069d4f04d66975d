"""Which tool-call format a model speaks, read from its chat template, and what each format
needs: its parser and the grammar that forces a call.

A template that mentions `tools` renders them itself (it is given `tools=`, as transformers and
vLLM do): `[TOOL_CALLS]` / `[AVAILABLE_TOOLS]` means Mistral, `<tool_call>` Hermes / Qwen2.5,
`<|python_tag|>` / `ipython` / a `"parameters"` key Llama 3.x JSON, anything else is read as
Hermes. A template without a
tool section (or no template) gets the Hermes layout from `app.tool_calls.prompt`.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from app.tool_calls import hermes, llama3_json, mistral
from app.tool_calls.parsing import ToolParser

_MENTIONS_TOOLS = re.compile(r"\btools\b")


class ToolFormat(enum.Enum):
    HERMES = "hermes"  # <tool_call>{"name": .., "arguments": {..}}</tool_call>
    LLAMA3_JSON = "llama3_json"  # {"name": .., "parameters": {..}}; ...
    MISTRAL = "mistral"  # [TOOL_CALLS] [{"name": .., "arguments": {..}}, ...]


@dataclass(frozen=True, slots=True)
class TemplateTools:
    format: ToolFormat
    native: bool  # the template renders tools itself; False: the Hermes fallback layout


def template_tools(template: str | None) -> TemplateTools:
    if not template or not _MENTIONS_TOOLS.search(template):
        return TemplateTools(ToolFormat.HERMES, native=False)
    if mistral.TOOL_CALLS in template or "[AVAILABLE_TOOLS]" in template:
        return TemplateTools(ToolFormat.MISTRAL, native=True)
    if hermes.OPEN in template:
        return TemplateTools(ToolFormat.HERMES, native=True)
    if any(mark in template for mark in (llama3_json.PYTHON_TAG, "ipython", '"parameters"')):
        return TemplateTools(ToolFormat.LLAMA3_JSON, native=True)
    return TemplateTools(ToolFormat.HERMES, native=True)


def parser_for(tool_format: ToolFormat) -> ToolParser:
    if tool_format is ToolFormat.LLAMA3_JSON:
        return llama3_json.Llama3JsonParser()
    if tool_format is ToolFormat.MISTRAL:
        return mistral.MistralParser()
    return hermes.HermesParser()


def call_tag(tool_format: ToolFormat, name: str) -> tuple[str, str]:
    """(what opens, what closes) one call of `name` around its arguments object, exactly as the
    format's parser and the fallback prompt write it."""
    if tool_format is ToolFormat.LLAMA3_JSON:
        return f'{{"name": "{name}", "parameters": ', "}"
    if tool_format is ToolFormat.MISTRAL:
        return f'{{"name": "{name}", "arguments": ', "}"
    return f'{hermes.OPEN}\n{{"name": "{name}", "arguments": ', f"}}\n{hermes.CLOSE}"


def call_separator(tool_format: ToolFormat) -> str:
    if tool_format is ToolFormat.MISTRAL:
        return mistral.LIST_SEPARATOR
    return llama3_json.SEPARATOR if tool_format is ToolFormat.LLAMA3_JSON else "\n"


def call_list(tool_format: ToolFormat) -> tuple[str, str]:
    """(what opens, what closes) all of an answer's calls together: Mistral's v3 writes them as
    one JSON list after its marker; the other formats have nothing around the calls."""
    if tool_format is ToolFormat.MISTRAL:
        return mistral.LIST_OPEN, mistral.LIST_CLOSE
    return "", ""
