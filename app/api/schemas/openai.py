"""OpenAI-compatible request bodies for /v1/chat/completions and /v1/completions.

Unknown top-level fields are rejected with 400 (as OpenAI does). Fields OpenAI accepts but this
server does not act on (metadata, ...) are accepted and ignored, except where ignoring them would
silently change the answer (best_of > n, suffix), which are refused with 400. Tools (`tools`,
`tool_choice`, `parallel_tool_calls`) and vLLM's `chat_template_kwargs` are checked in
`app/api/tools.py`. Completions take a list of prompts (strings or token-id lists, at most
MAX_PROMPTS), `echo`, and `max_tokens: 0` with echo (score the prompt, generate nothing).
Flywheel extras: conversation_id, parent_message_id, regenerate_of, and vLLM-style sampling
extras (top_k, min_p, repetition_penalty, min_tokens, ignore_eos, stop_token_ids).
Structured outputs: chat's `response_format`, and on both endpoints vLLM's `guided_json` /
`guided_regex` / `guided_choice` / `guided_grammar` / `structured_outputs` (turned into one
constraint, or refused naming the field, in `app/api/structured.py`).

Bounds checked here, without the model: text is valid Unicode (no lone surrogates, which no
tokenizer can encode), a prompt or a chat's contents total at most MAX_PROMPT_CHARS characters
(larger ones are refused before tokenization, which is what a huge input would cost),
repetition_penalty in [0.01, 10], logit_bias values in [-100, 100] on token-id keys (at most
MAX_LOGIT_BIAS entries), `content: null` only on an assistant message with tool_calls.
Bounds that need the model (vocabulary size, context length) are checked in `app/api/sampling.py`.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt,
                      field_validator, model_validator)

from app.api.priority import MAX_PRIORITY
from app.api.validation_messages import ParamError

MAX_PROMPT_CHARS = 1_000_000  # a completions prompt, or all of a chat's message contents together
MAX_STOP_CHARS = 1_000  # one stop string
MAX_STOP_TOKEN_IDS = 1_024
MAX_PROMPTS = 1_024  # prompts in one completions request
MAX_LOGIT_BIAS = 1_024  # logit_bias entries


def _valid_unicode(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:  # JSON's "\ud800" escape decodes to a lone surrogate
        raise ValueError(f"invalid Unicode: lone surrogate at character {e.start}") from e
    return text


Text = Annotated[str, AfterValidator(_valid_unicode)]
Probability = Annotated[float, Field(ge=0.0, le=2.0)]
Penalty = Annotated[float, Field(ge=-2.0, le=2.0)]
StopString = Annotated[Text, Field(min_length=1, max_length=MAX_STOP_CHARS)]
StopField = (Annotated[Text, Field(max_length=MAX_STOP_CHARS)]
             | Annotated[list[StopString], Field(max_length=16)] | None)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: StrictBool | None = None
    include_obfuscation: StrictBool | None = None


class ContentPart(BaseModel):
    type: Literal["text"]
    text: Annotated[Text, Field(max_length=MAX_PROMPT_CHARS)]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Annotated[Text, Field(max_length=MAX_PROMPT_CHARS)] | list[ContentPart] | None = None
    name: Annotated[Text, Field(max_length=256)] | None = None
    # accepted for compatibility with transcripts from OpenAI; not rendered into the prompt
    refusal: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _content_required(self):
        # OpenAI allows a null content only on an assistant turn that carries tool calls
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise ParamError("content", f"content is required for a {self.role} message (null is "
                                        f"allowed only on an assistant message with tool_calls)")
        return self

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class _SamplingFields(BaseModel):
    """Fields shared by chat and completions."""
    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=256)
    max_tokens: StrictInt | None = Field(default=None, ge=1)
    temperature: Probability | None = None
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    n: StrictInt | None = Field(default=None, ge=1, le=16)
    stop: StopField = None
    seed: StrictInt | None = Field(default=None, ge=-(2**63), le=2**63 - 1)
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    user: str | None = None
    stream: StrictBool | None = False
    stream_options: StreamOptions | None = None
    # OpenAI's shape: token id (as a JSON string key) -> bias in [-100, 100]
    logit_bias: Annotated[dict[str, Annotated[float, Field(ge=-100.0, le=100.0)]],
                          Field(max_length=MAX_LOGIT_BIAS)] | None = None
    # vLLM-style extras
    top_k: StrictInt | None = Field(default=None, ge=-1)
    min_p: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    # vLLM only asks > 0; below 0.01 every repeated token's logit is multiplied by 100+
    repetition_penalty: Annotated[float, Field(ge=0.01, le=10.0)] | None = None
    min_tokens: StrictInt | None = Field(default=None, ge=0)
    ignore_eos: StrictBool | None = None
    stop_token_ids: Annotated[list[Annotated[StrictInt, Field(ge=0)]],
                              Field(max_length=MAX_STOP_TOKEN_IDS)] | None = None
    # prefix-cache isolation: only requests with the same salt share cached KV (vLLM's field);
    # skip_prefix_cache neither reads nor publishes cached blocks
    cache_salt: str | None = Field(default=None, min_length=1, max_length=256)
    skip_prefix_cache: StrictBool | None = None
    # speculative decoding for this request (engine default when absent; see README)
    speculative: StrictBool | None = None
    # vLLM's scheduling priority: lower is served first; at least the API key's class
    # (app/api/priority.py)
    priority: StrictInt | None = Field(default=None, ge=0, le=MAX_PRIORITY)
    # structured outputs under vLLM's names (app/api/structured.py makes them one constraint)
    guided_json: dict[str, Any] | str | None = None
    guided_regex: str | None = None
    guided_choice: list[str] | None = None
    guided_grammar: str | None = None
    structured_outputs: dict[str, Any] | None = None
    # accepted and ignored, as OpenAI features with no effect on a local model
    metadata: dict[str, Any] | None = None
    store: bool | None = None
    service_tier: str | None = None

    @field_validator("logit_bias")
    @classmethod
    def _token_id_keys(cls, bias: dict[str, float] | None) -> dict[str, float] | None:
        for key in bias or {}:
            if not key.isascii() or not key.isdigit():
                raise ValueError(f"logit_bias keys must be token ids (non-negative integers as "
                                 f"strings), got {key[:20]!r}")
        return bias

    def token_logit_bias(self) -> dict[int, float] | None:
        return {int(k): v for k, v in self.logit_bias.items()} if self.logit_bias else None


class ChatCompletionRequest(_SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: StrictInt | None = Field(default=None, ge=1)
    logprobs: StrictBool | None = False
    top_logprobs: StrictInt | None = Field(default=None, ge=0, le=20)
    # checked (400 naming the field) and acted on in app/api/tools.py
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: StrictBool | None = None
    chat_template_kwargs: dict[str, Any] | None = None  # vLLM's extra template variables
    response_format: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    modalities: list[str] | None = None
    # Flywheel extras
    conversation_id: str | None = Field(default=None, max_length=64)
    parent_message_id: str | None = Field(default=None, max_length=64)
    regenerate_of: str | None = Field(default=None, max_length=64)

    @field_validator("messages")
    @classmethod
    def _total_content(cls, messages: list[ChatMessage]) -> list[ChatMessage]:
        total = sum(len(m.text()) for m in messages)
        if total > MAX_PROMPT_CHARS:
            raise ValueError(f"the messages' contents total {total} characters; the limit is "
                             f"{MAX_PROMPT_CHARS}")
        return messages

    @model_validator(mode="after")
    def _check_chat(self):
        if self.top_logprobs is not None and not self.logprobs:
            raise ParamError("top_logprobs", "top_logprobs requires logprobs=true")
        return self

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    @property
    def num_logprobs(self) -> int | None:
        return (self.top_logprobs or 0) if self.logprobs else None


TokenIds = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]
PromptField = (Annotated[Text, Field(max_length=MAX_PROMPT_CHARS)]
               | TokenIds
               | Annotated[list[Annotated[Text, Field(max_length=MAX_PROMPT_CHARS)]],
                           Field(min_length=1, max_length=MAX_PROMPTS)]
               | Annotated[list[TokenIds], Field(min_length=1, max_length=MAX_PROMPTS)])


class CompletionRequest(_SamplingFields):
    prompt: PromptField
    max_tokens: StrictInt | None = Field(default=None, ge=0)  # 0: echo only
    logprobs: StrictInt | None = Field(default=None, ge=0, le=5)
    echo: StrictBool | None = False
    best_of: StrictInt | None = Field(default=None, ge=1, le=16)
    suffix: str | None = None

    @field_validator("prompt")
    @classmethod
    def _total_prompt_chars(cls, prompt):
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], str):
            total = sum(map(len, prompt))
            if total > MAX_PROMPT_CHARS:
                raise ValueError(f"the prompts total {total} characters; the limit is "
                                 f"{MAX_PROMPT_CHARS}")
        return prompt

    @model_validator(mode="after")
    def _check_completion(self):
        if self.max_tokens == 0 and not self.echo:
            raise ParamError("max_tokens", "max_tokens 0 generates nothing; it is only allowed with "
                                           "echo")
        if self.suffix:
            raise ParamError("suffix", "suffix is not supported by this server")
        if self.best_of is not None and self.best_of != (self.n or 1):
            raise ParamError("best_of", "best_of different from n is not supported by this server")
        return self

    @property
    def token_limit(self) -> int | None:
        # echo only: the engine generates one token, which the answer drops (as vLLM does)
        return 1 if self.echo_only else self.max_tokens

    @property
    def echo_only(self) -> bool:
        return self.max_tokens == 0

    @property
    def num_logprobs(self) -> int | None:
        return self.logprobs

    def prompts(self) -> list[str] | list[list[int]]:
        """The prompt as a list: one entry per prompt, each a string or token ids."""
        if isinstance(self.prompt, str):
            return [self.prompt]
        if self.prompt and isinstance(self.prompt[0], int):
            return [list(self.prompt)]
        return list(self.prompt)
