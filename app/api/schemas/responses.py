"""Request body of POST /v1/responses (OpenAI's Responses API), text in and text out.

`input` is a string or a list of items: messages whose content is a string or text parts
(`input_text`, and `output_text` for assistant turns a client replays), and the function calls a
client replays (`function_call`) with their results (`function_call_output`). `instructions` is a
system message for this call only (not carried over by `previous_response_id`, as OpenAI does).
`text.format` asks for structured output (`json_object`, `json_schema`), enforced like chat's
`response_format`. Function `tools` and `tool_choice` are checked in `app/api/responses_tools.py`.

Refused with 400 naming the field, rather than ignored, where ignoring would change the answer:
`background: true`, and input that is not text (images, files).
OpenAI fields with no effect on a local model (metadata, user, service_tier, include, reasoning,
truncation, ...) are accepted and ignored. Flywheel/vLLM extras: `priority` (app/api/priority.py),
`seed`.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import (BaseModel, ConfigDict, Discriminator, Field, StrictBool, StrictInt, Tag,
                      model_validator)

from app.api.priority import MAX_PRIORITY
from app.api.schemas.openai import MAX_PROMPT_CHARS, Probability, Text
from app.api.validation_messages import ParamError

LongText = Annotated[Text, Field(max_length=MAX_PROMPT_CHARS)]


class InputTextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["input_text", "output_text"]
    text: LongText
    annotations: list[Any] | None = None  # on replayed output_text parts; not rendered
    logprobs: list[Any] | None = None


class InputMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: LongText | list[InputTextPart]
    id: str | None = None  # replayed output items carry their id and status
    status: str | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content


class FunctionCallItem(BaseModel):
    """A call the model made earlier, replayed by the client."""
    model_config = ConfigDict(extra="forbid")
    type: Literal["function_call"]
    call_id: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=256)
    arguments: LongText
    id: str | None = None
    status: str | None = None


class FunctionCallOutputItem(BaseModel):
    """The result of a call, for the model to read."""
    model_config = ConfigDict(extra="forbid")
    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1, max_length=128)
    output: LongText
    id: str | None = None
    status: str | None = None


def _item_type(value: Any) -> str:
    # a message may leave out "type" (OpenAI's EasyInputMessage); other items never do
    kind = value.get("type", "message") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if isinstance(kind, str) else "message"


InputItem = Annotated[Union[Annotated[InputMessage, Tag("message")],
                            Annotated[FunctionCallItem, Tag("function_call")],
                            Annotated[FunctionCallOutputItem, Tag("function_call_output")]],
                      Discriminator(_item_type)]


class TextFormat(BaseModel):
    """OpenAI's `text.format`: the json_schema variant is flat (name, schema, strict here, where
    chat nests them under `json_schema`)."""
    model_config = ConfigDict(extra="forbid")
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = Field(default=None, max_length=64)
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _schema_given(self):
        if self.type == "json_schema" and self.schema_ is None:
            raise ParamError("schema", "text.format.schema is required when text.format.type "
                                       "is 'json_schema'")
        return self


class TextConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: TextFormat | None = None
    verbosity: str | None = None  # accepted and ignored


class ResponsesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=256)
    input: LongText | Annotated[list[InputItem], Field(min_length=1)]
    instructions: LongText | None = None
    max_output_tokens: StrictInt | None = Field(default=None, ge=1)
    temperature: Probability | None = None
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    stream: StrictBool | None = False
    text: TextConfig | None = None
    previous_response_id: str | None = Field(default=None, max_length=64)
    store: StrictBool | None = True  # false: nothing is kept, and the id cannot be continued
    # Flywheel / vLLM extras
    priority: StrictInt | None = Field(default=None, ge=0, le=MAX_PRIORITY)
    seed: StrictInt | None = Field(default=None, ge=-(2**63), le=2**63 - 1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    background: StrictBool | None = None
    # accepted and ignored: no effect on a local model
    metadata: dict[str, Any] | None = None
    user: str | None = None
    service_tier: str | None = None
    include: list[str] | None = None
    reasoning: dict[str, Any] | None = None
    truncation: str | None = None
    stream_options: dict[str, Any] | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None

    @model_validator(mode="after")
    def _check(self):
        if self.background:
            raise ParamError("background", "background responses are not supported by this "
                                           "server; send background: false")
        total = len(self.instructions or "") + sum(map(_item_chars, self.items()))
        if total > MAX_PROMPT_CHARS:
            raise ParamError("input", f"the input and instructions total {total} characters; the "
                                      f"limit is {MAX_PROMPT_CHARS}")
        return self

    def items(self) -> list[InputMessage | FunctionCallItem | FunctionCallOutputItem]:
        """`input` as items (a string is one user message)."""
        if isinstance(self.input, str):
            return [InputMessage(role="user", content=self.input)]
        return list(self.input)

    @property
    def format_type(self) -> str:
        return self.text.format.type if self.text and self.text.format else "text"


def _item_chars(item: InputMessage | FunctionCallItem | FunctionCallOutputItem) -> int:
    if isinstance(item, InputMessage):
        return len(item.text())
    return len(item.arguments if isinstance(item, FunctionCallItem) else item.output)
