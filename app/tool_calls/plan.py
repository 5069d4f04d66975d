"""What one chat request does with tools on one model: which tools the prompt shows, which
grammar forces a call, which parser reads the answer. Built once per request at the entry point
(the chat route, `LLM.chat`) and passed down."""
from __future__ import annotations

from dataclasses import dataclass

from app.tool_calls.constraint import forced_calls_constraint
from app.tool_calls.formats import ToolFormat, parser_for, template_tools
from app.tool_calls.parsing import ParsedMessage, ToolParser, message_from
from app.tool_calls.spec import ToolRequest
from shared import StructuredOutputsParams


@dataclass(frozen=True, slots=True)
class ToolPlan:
    request: ToolRequest | None  # None: the request has no tools
    format: ToolFormat  # the model's call format (from its chat template)

    @classmethod
    def for_tokenizer(cls, tokenizer, request: ToolRequest | None) -> ToolPlan:
        return cls(request, template_tools(getattr(tokenizer, "chat_template", None)).format)

    @property
    def rendered_tools(self) -> list[dict] | None:
        return self.request.rendered if self.request is not None else None

    def constraint(self) -> StructuredOutputsParams | None:
        """The grammar for tool_choice "required" or a named function; else None."""
        return forced_calls_constraint(self.request, self.format) if self.request else None

    def parser(self) -> ToolParser | None:
        """The answer's parser; None when calls are not parsed (no tools, or choice "none")."""
        if self.request is None or not self.request.parses_calls:
            return None
        return parser_for(self.format)

    @property
    def keeps_special_tokens(self) -> bool:
        """The answer must be decoded with special tokens: Mistral's `[TOOL_CALLS]` marker is
        one in its tokenizers (vLLM's Mistral parser asks the same), and the parser needs it."""
        return self.format is ToolFormat.MISTRAL and self.parser() is not None

    def parse(self, text: str) -> ParsedMessage:
        parser = self.parser()
        return message_from(parser, text) if parser else ParsedMessage(text, [])
