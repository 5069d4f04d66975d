"""A /v1/responses request -> the chat messages the model sees, its sampling params, and where
the exchange is stored.

The model sees: `instructions` (a system message, this call only), then the thread of
`previous_response_id` (root to that answer), then `input`. What is stored is the thread plus the
input messages and the answer, so the next `previous_response_id` continues from here;
instructions are kept in the answer's sampling record rather than as a message, since OpenAI does
not carry them over to the next response either.
"""
from __future__ import annotations

from dataclasses import dataclass

from app.api.errors import APIError
from app.api.history import ExchangePlan
from app.api.responses_thread import Thread
from app.api.responses_tools import stored_content
from app.api.sampling import check_prompt_fits
from app.api.schemas.responses import ResponsesRequest, TextFormat
from app.api.structured import structured_outputs_from
from app.serving.chat_template import render_prompt_ids
from app.store.base import new_id
from app.store.crud_chat import MessageRecord
from shared import SamplingParams, StructuredOutputsParams

_TITLE_CHARS = 80


@dataclass(slots=True)
class _FormatOnly:
    """What `structured_outputs_from` reads, for a request that can only ask through
    `response_format` (chat's shape, translated from `text.format`)."""
    response_format: dict
    guided_json: None = None
    guided_regex: None = None
    guided_choice: None = None
    guided_grammar: None = None
    structured_outputs: None = None


def model_messages(body: ResponsesRequest, thread: Thread | None,
                   inputs: list[dict]) -> list[dict]:
    history = [{"role": m.role, "content": m.content} for m in thread.messages] if thread else []
    system = [{"role": "system", "content": body.instructions}] if body.instructions else []
    return [*system, *history, *inputs]


def text_format_constraint(text_format: TextFormat | None) -> StructuredOutputsParams | None:
    """`text.format` as the engine's constraint (None for plain text); APIError 400 naming the
    text.format field at fault."""
    if text_format is None or text_format.type == "text":
        return None
    response_format: dict = {"type": text_format.type}
    if text_format.type == "json_schema":
        response_format["json_schema"] = {"name": text_format.name or "response",
                                          "schema": text_format.schema_,
                                          "strict": text_format.strict}
    try:
        return structured_outputs_from(_FormatOnly(response_format))
    except APIError as e:
        e.param = _text_format_param(e.param, text_format.type)
        raise


def sampling_params(body: ResponsesRequest, num_prompt_tokens: int, max_model_len: int,
                    constraint: StructuredOutputsParams | None) -> SamplingParams:
    check_prompt_fits(num_prompt_tokens, max_model_len, "input")
    room = max_model_len - num_prompt_tokens
    limit = body.max_output_tokens if body.max_output_tokens is not None else room
    if limit > room:
        raise APIError(400, f"This model's maximum context length is {max_model_len} tokens. "
                            f"However, you requested {num_prompt_tokens + limit} tokens "
                            f"({num_prompt_tokens} in the input, {limit} for the output).",
                       param="max_output_tokens", code="context_length_exceeded")
    values = {"temperature": body.temperature, "top_p": body.top_p, "seed": body.seed,
              "structured_outputs": constraint}
    return SamplingParams(max_tokens=limit, **{k: v for k, v in values.items() if v is not None})


def prompt_ids(tokenizer, messages: list[dict], tools: list[dict] | None = None) -> list[int]:
    try:
        return render_prompt_ids(tokenizer, messages, tools)
    except ValueError as e:
        raise APIError(400, str(e), param="input") from e


def plan_exchange(user_id: str, thread: Thread | None, inputs: list[dict]) -> ExchangePlan:
    """Where the input messages and the answer go: after the thread's last answer, or in a new
    conversation."""
    parent_id = thread.last_id if thread else None
    prior = []
    for message in inputs:
        prior.append(MessageRecord(id=new_id("msg"), role=message["role"],
                                   content=stored_content(message), parent_id=parent_id))
        parent_id = prior[-1].id
    if thread is not None:
        return ExchangePlan(conversation_id=thread.conversation_id, owner_id=thread.owner_id,
                            create_conversation=False, title=None, prior=prior,
                            answer_parent_id=parent_id, message_ids=[new_id("msg")])
    first_user = next((m["content"] for m in inputs if m["role"] == "user"),
                      stored_content(inputs[0]))
    title = (first_user.strip().splitlines() or ["New conversation"])[0][:_TITLE_CHARS]
    return ExchangePlan(conversation_id=new_id("conv"), owner_id=user_id,
                        create_conversation=True, title=title, prior=prior,
                        answer_parent_id=parent_id, message_ids=[new_id("msg")])


def _text_format_param(param: str | None, kind: str) -> str:
    # chat's names -> this endpoint's: response_format.json_schema.schema -> text.format.schema;
    # a schema the grammar engine refuses is reported on response_format as a whole
    rest = (param or "").removeprefix("response_format").removeprefix(".json_schema")
    return "text.format" + (rest or (".schema" if kind == "json_schema" else ""))
