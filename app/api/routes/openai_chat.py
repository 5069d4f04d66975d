"""POST /v1/chat/completions (OpenAI-compatible, plus Flywheel's conversation fields)."""
from __future__ import annotations

import asyncio
import uuid

from fastapi import APIRouter, Request

from app.api import history
from app.api.deps import CurrentUser, StateDep, resolve_model
from app.api.errors import APIError
from app.api.openai_format import ChatFormat, ResponseMeta
from app.api.openai_responder import respond
from app.api.priority import request_priority
from app.api.sampling import isolate_prefix_cache, sampling_record, to_sampling_params
from app.api.schemas.openai import ChatCompletionRequest
from app.api.tools import stored_messages, template_messages, tool_plan, with_forced_calls
from app.serving.chat_template import render_prompt_ids
from app.serving.generation import GenerationRun
from model.chat_template import TemplateKwargsError

router = APIRouter(prefix="/v1", tags=["openai"])


@router.post("/chat/completions")
async def create_chat_completion(body: ChatCompletionRequest, request: Request, state: StateDep,
                                 user: CurrentUser):
    model = resolve_model(state, body.model)  # a bad name is a 404 before anything else
    messages = template_messages(body)
    # rendering + tokenizing a long input takes long: off the event loop, so /health and
    # running streams keep going meanwhile
    prompt_ids, params, tools = await asyncio.to_thread(_prepare, body, model, messages)
    plan = await history.plan_chat(state, user, messages=stored_messages(messages), n=params.n,
                                   conversation_id=body.conversation_id,
                                   parent_message_id=body.parent_message_id,
                                   regenerate_of=body.regenerate_of)
    routed = resolve_model(state, body.model, route_key=plan.conversation_id)
    if routed is not model:  # the conversation is on the canary (or a swap just happened)
        model = routed
        prompt_ids, params, tools = await asyncio.to_thread(_prepare, body, model, messages)
    params = isolate_prefix_cache(params, user.id, state.settings.prefix_cache_isolation)
    request_id = f"chatcmpl-{uuid.uuid4().hex}"
    run = GenerationRun(model.engine, model.id, prompt_ids, params, request_id, state.metrics,
                        priority=request_priority(body.priority, user))
    meta = ResponseMeta(request_id, model.id, plan.conversation_id, plan.message_ids,
                        model_name=body.model)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return await respond(
        request, run, ChatFormat(meta, model.tokenizer, body.num_logprobs, tools.parser()),
        stream=bool(body.stream),
        include_usage=include_usage, metrics=state.metrics, endpoint="chat",
        on_finished=lambda: history.record(state, user, plan, run, model, _signals(body, params)))


def _signals(body: ChatCompletionRequest, params) -> dict:
    """The stored sampling record, plus which answer this one regenerates: the flywheel reads a
    regenerated answer as an implicit thumbs-down (app/review/export.py)."""
    record = sampling_record(params)
    return {**record, "regenerate_of": body.regenerate_of} if body.regenerate_of else record


def _prepare(body: ChatCompletionRequest, model, messages: list[dict]):
    """The prompt's token ids, the sampling params (checked against `model`'s context) and what
    the request does with tools on this model."""
    tools = tool_plan(body, model.tokenizer)
    try:
        prompt_ids = render_prompt_ids(model.tokenizer, messages, tools.rendered_tools,
                                       body.chat_template_kwargs)
    except TemplateKwargsError as e:
        raise APIError(400, str(e), param="chat_template_kwargs") from e
    except ValueError as e:
        raise APIError(400, str(e), param="messages") from e
    params = to_sampling_params(body, len(prompt_ids), model.max_model_len,
                                model.tokenizer.vocab_size)
    return prompt_ids, with_forced_calls(params, tools), tools
