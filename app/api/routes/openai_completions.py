"""POST /v1/completions (OpenAI-compatible): one prompt or a list (texts or token-id lists).

Every prompt of a request runs on one model version: the one its first prompt's conversation is
routed to. Each prompt is stored as its own exchange, except echo-only requests (`max_tokens: 0`),
which score a prompt and answer nothing.
"""
from __future__ import annotations

import asyncio
import dataclasses
import uuid

from fastapi import APIRouter, Request

from app.api import history
from app.api.completion_batch import CompletionBatch, EchoMode, PromptRun
from app.api.deps import CurrentUser, StateDep, resolve_model
from app.api.errors import APIError
from app.api.openai_format import CompletionFormat, ResponseMeta
from app.api.openai_responder import respond
from app.api.priority import request_priority
from app.api.sampling import (check_prompt_fits, isolate_prefix_cache, sampling_record,
                              to_sampling_params)
from app.api.schemas.openai import CompletionRequest
from app.serving.generation import GenerationRun
from shared import SamplingParams

router = APIRouter(prefix="/v1", tags=["openai"])


@dataclasses.dataclass(slots=True)
class PreparedPrompt:
    token_ids: list[int]
    text: str  # as given, or decoded from the token ids
    params: SamplingParams  # checked against this prompt's length and the model


@router.post("/completions")
async def create_completion(body: CompletionRequest, request: Request, state: StateDep,
                            user: CurrentUser):
    model = resolve_model(state, body.model)
    # tokenizing up to a million characters takes long: off the event loop
    prepared = await asyncio.to_thread(_prepare, body, model)
    plans = [history.plan_completion(p.text, p.params.n) for p in prepared]
    routed = resolve_model(state, body.model, route_key=plans[0].conversation_id)
    if routed is not model:  # this completion's conversation falls in the canary share
        model = routed
        prepared = await asyncio.to_thread(_prepare, body, model)
    priority = request_priority(body.priority, user)  # before any prompt is queued
    batch, meta = _batch(state, user, model, body, prepared, plans, priority)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return await respond(
        request, batch, CompletionFormat(meta, model.tokenizer, body.num_logprobs),
        stream=bool(body.stream), include_usage=include_usage, metrics=state.metrics,
        endpoint="completions",
        on_finished=lambda: _record(state, user, model, batch, body.echo_only))


def _batch(state, user, model, body: CompletionRequest, prepared: list[PreparedPrompt],
           plans: list[history.ExchangePlan],
           priority: int) -> tuple[CompletionBatch, ResponseMeta]:
    request_id = f"cmpl-{uuid.uuid4().hex}"
    batch = CompletionBatch(
        [PromptRun(_run(state, user, model, p, f"{request_id}-{i}", priority), p.text, plan)
         for i, (p, plan) in enumerate(zip(prepared, plans))],
        n=body.n or 1, mode=EchoMode(bool(body.echo), body.echo_only), request_id=request_id,
        model_id=model.id)
    if body.echo_only:  # nothing is stored, so there are no ids to point at
        return batch, ResponseMeta(request_id, model.id, model_name=body.model)
    return batch, ResponseMeta(request_id, model.id, plans[0].conversation_id,
                               [m for plan in plans for m in plan.message_ids],
                               model_name=body.model)


def _run(state, user, model, prompt: PreparedPrompt, request_id: str,
         priority: int) -> GenerationRun:
    params = isolate_prefix_cache(prompt.params, user.id, state.settings.prefix_cache_isolation)
    return GenerationRun(model.engine, model.id, prompt.token_ids, params, request_id,
                         state.metrics, priority=priority)


async def _record(state, user, model, batch: CompletionBatch, echo_only: bool) -> None:
    if echo_only:  # scoring only: there is no answer to keep
        return
    # "endpoint" tells the flywheel this prompt is plain text, not a chat turn
    await asyncio.gather(*(
        history.record(state, user, p.plan, p.run, model,
                       {**sampling_record(p.run.params), "endpoint": "completions"})
        for p in batch.prompts))


def _prepare(body: CompletionRequest, model) -> list[PreparedPrompt]:
    """Each prompt's token ids and text, and sampling params checked against `model`."""
    prepared = []
    for prompt in body.prompts():
        token_ids, text = _prompt(prompt, model.tokenizer, model.max_model_len)
        params = to_sampling_params(body, len(token_ids), model.max_model_len,
                                    model.tokenizer.vocab_size)
        if body.echo and body.logprobs is not None:  # echo shows the prompt's logprobs too
            params = dataclasses.replace(params, prompt_logprobs=body.logprobs)
        prepared.append(PreparedPrompt(token_ids, text, params))
    return prepared


def _prompt(prompt: str | list[int], tokenizer, max_model_len: int) -> tuple[list[int], str]:
    """(token ids, text) for a string or a token-id list."""
    if isinstance(prompt, str):
        return tokenizer.encode(prompt, add_bos=True), prompt
    if max(prompt) >= tokenizer.vocab_size:
        raise APIError(400, f"prompt token ids must be below the vocabulary size "
                            f"{tokenizer.vocab_size}", param="prompt", code="invalid_value")
    check_prompt_fits(len(prompt), max_model_len, "prompt")  # before decoding a huge list
    return list(prompt), tokenizer.decode(prompt, skip_special_tokens=True)
