"""POST /v1/responses and GET /v1/responses/{response_id} (OpenAI's Responses API, text).

A response runs through the same engine path as a chat completion (prompt rendered with the
model's chat template, function tools as on chat, answer streamed by `app.api.openai_responder`)
and is stored as a chat exchange unless `store` is false; its id names the stored answer
(`app.api.responses_thread`).
"""
from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from app.api import history
from app.api.deps import CurrentUser, StateDep, resolve_model
from app.api.openai_responder import respond
from app.api.priority import request_priority
from app.api.responses_format import (ResponseEcho, ResponsesFormat, message_item,
                                      response_object, response_usage, status_of)
from app.api.responses_prepare import (model_messages, plan_exchange, prompt_ids,
                                       sampling_params, text_format_constraint)
from app.api.responses_thread import load_answer, load_thread, response_id_of
from app.api.responses_tools import input_messages, tool_plan
from app.api.tools import with_forced_calls
from app.api.sampling import isolate_prefix_cache, sampling_record
from app.api.schemas.responses import ResponsesRequest
from app.serving.generation import GenerationRun
from app.store.base import new_id

router = APIRouter(prefix="/v1", tags=["openai"])


@router.post("/responses")
async def create_response(body: ResponsesRequest, request: Request, state: StateDep,
                          user: CurrentUser):
    model = resolve_model(state, body.model)  # a bad name is a 404 before anything else
    priority = request_priority(body.priority, user)
    constraint = text_format_constraint(body.text.format if body.text else None)
    thread = (await asyncio.to_thread(load_thread, state, user, body.previous_response_id)
              if body.previous_response_id else None)
    inputs = input_messages(body)
    plan = plan_exchange(user.id, thread, inputs)
    model = resolve_model(state, body.model, route_key=plan.conversation_id)
    tools = tool_plan(body, model.tokenizer)
    messages = model_messages(body, thread, inputs)
    ids = await asyncio.to_thread(prompt_ids, model.tokenizer, messages,  # long inputs: off-loop
                                  tools.rendered_tools)
    params = with_forced_calls(sampling_params(body, len(ids), model.max_model_len, constraint),
                               tools)
    params = isolate_prefix_cache(params, user.id, state.settings.prefix_cache_isolation)
    echo = _echo(body, model.id, plan, stored=body.store is not False)
    run = GenerationRun(model.engine, model.id, ids, params, echo.id, state.metrics,
                        priority=priority)
    return await respond(request, run, ResponsesFormat(echo, tools), stream=bool(body.stream),
                         include_usage=True, metrics=state.metrics, endpoint="responses",
                         on_finished=_keeper(state, user, plan, run, model, body, params))


@router.get("/responses/{response_id}")
async def read_response(response_id: str, state: StateDep, user: CurrentUser) -> dict:
    answer = await asyncio.to_thread(load_answer, state, user, response_id)
    record = answer.sampling_params or {}
    echo = ResponseEcho(id=response_id, message_id=answer.message_id,
                        model_id=answer.model_version or "", conversation_id=answer.conversation_id,
                        instructions=record.get("instructions"),
                        temperature=record.get("temperature"), top_p=record.get("top_p"),
                        created_at=int(answer.created_at.timestamp()) if answer.created_at else 0)
    usage = response_usage(answer.prompt_tokens or 0, answer.completion_tokens or 0)
    status = status_of(answer.finish_reason)
    item = message_item(echo, answer.content, status)  # "completed" or "incomplete", as the item
    return response_object(echo, status=status, usage=usage, output=[item])


def _echo(body: ResponsesRequest, model_id: str, plan: history.ExchangePlan,
          stored: bool) -> ResponseEcho:
    message_id = plan.message_ids[0]
    text_format = (body.text.format.model_dump(by_alias=True, exclude_none=True)
                   if body.text and body.text.format else {"type": "text"})
    return ResponseEcho(
        id=response_id_of(message_id) if stored else new_id("resp"),  # unstored: no lookup
        message_id=message_id, model_id=model_id,
        conversation_id=plan.conversation_id if stored else None,
        instructions=body.instructions, max_output_tokens=body.max_output_tokens,
        temperature=body.temperature, top_p=body.top_p,
        previous_response_id=body.previous_response_id, store=stored, text_format=text_format,
        metadata=body.metadata or {}, user=body.user, model_name=body.model,
        tools=body.tools or [], tool_choice=body.tool_choice or "auto",
        parallel_tool_calls=body.parallel_tool_calls is not False)


def _keeper(state, user, plan, run: GenerationRun, model, body: ResponsesRequest, params):
    """What keeps the exchange once answered: nothing with `store: false`."""
    if body.store is False:
        async def keep_nothing() -> None:
            return None
        return keep_nothing
    record = {**sampling_record(params), "endpoint": "responses"}
    if body.instructions:
        record["instructions"] = body.instructions
    return lambda: history.record(state, user, plan, run, model, record)
