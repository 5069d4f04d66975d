"""POST /v1/completions (OpenAI-compatible): a text prompt or a list of token ids."""
from __future__ import annotations

import asyncio
import uuid

from fastapi import APIRouter, Request

from app.api import history
from app.api.deps import CurrentUser, StateDep, resolve_model
from app.api.errors import APIError
from app.api.openai_format import CompletionFormat, ResponseMeta
from app.api.openai_responder import respond
from app.api.sampling import (check_prompt_fits, isolate_prefix_cache, sampling_record,
                              to_sampling_params)
from app.api.schemas.openai import CompletionRequest
from app.serving.generation import GenerationRun
from shared import SamplingParams

router = APIRouter(prefix="/v1", tags=["openai"])


@router.post("/completions")
async def create_completion(body: CompletionRequest, request: Request, state: StateDep,
                            user: CurrentUser):
    model = resolve_model(state, body.model)
    # tokenizing up to a million characters takes long: off the event loop
    prompt_ids, prompt_text, params = await asyncio.to_thread(_prepare, body, model)
    plan = history.plan_completion(prompt_text, params.n)
    routed = resolve_model(state, body.model, route_key=plan.conversation_id)
    if routed is not model:  # this completion's conversation falls in the canary share
        model = routed
        prompt_ids, _, params = await asyncio.to_thread(_prepare, body, model)
    params = isolate_prefix_cache(params, user.id, state.settings.prefix_cache_isolation)
    request_id = f"cmpl-{uuid.uuid4().hex}"
    run = GenerationRun(model.engine, model.id, prompt_ids, params, request_id, state.metrics)
    meta = ResponseMeta(request_id, model.id, plan.conversation_id, plan.message_ids)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return await respond(
        request, run, CompletionFormat(meta, model.tokenizer, body.num_logprobs),
        stream=bool(body.stream), include_usage=include_usage, metrics=state.metrics,
        endpoint="completions",
        # "endpoint" tells the flywheel this prompt is plain text, not a chat turn
        on_finished=lambda: history.record(state, user, plan, run, model,
                                           {**sampling_record(params), "endpoint": "completions"}))


def _prepare(body: CompletionRequest, model) -> tuple[list[int], str, SamplingParams]:
    """The prompt's token ids and text, and the sampling params checked against `model`."""
    prompt_ids, prompt_text = _prompt(body.prompt, model.tokenizer, model.max_model_len)
    return prompt_ids, prompt_text, to_sampling_params(body, len(prompt_ids), model.max_model_len,
                                                       model.tokenizer.vocab_size)


def _prompt(prompt, tokenizer, max_model_len: int) -> tuple[list[int], str]:
    """(token ids, text) for a string, a token-id list, or a one-element list of either."""
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]
    if isinstance(prompt, str):
        return tokenizer.encode(prompt, add_bos=True), prompt
    if max(prompt) >= tokenizer.vocab_size:
        raise APIError(400, f"prompt token ids must be below the vocabulary size "
                            f"{tokenizer.vocab_size}", param="prompt", code="invalid_value")
    check_prompt_fits(len(prompt), max_model_len, "prompt")  # before decoding a huge list
    return list(prompt), tokenizer.decode(prompt, skip_special_tokens=True)
