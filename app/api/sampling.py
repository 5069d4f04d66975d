"""OpenAI request fields -> the engine's SamplingParams, checked against the model's context.

A prompt that leaves no room in the context, or a max_tokens that would run past it, is a 400
naming the field (as OpenAI does for context overflow), never a silent truncation. Fields that
name tokens are checked against the model's vocabulary: stop_token_ids and logit_bias keys must be
real token ids, and top_k may not exceed the vocabulary (-1 and 0 mean "off", as in vLLM).
"""
from __future__ import annotations

import dataclasses

from app.api.errors import APIError
from app.api.schemas.openai import ChatCompletionRequest, CompletionRequest
from app.api.structured import structured_outputs_from
from app.core.config import PrefixCacheIsolation
from shared import SamplingParams

DEFAULT_COMPLETION_MAX_TOKENS = 16  # OpenAI's default for /v1/completions


def check_prompt_fits(num_prompt_tokens: int, max_model_len: int, param: str) -> None:
    if num_prompt_tokens >= max_model_len:
        raise APIError(400, f"This model's maximum context length is {max_model_len} tokens. "
                            f"However, your prompt has {num_prompt_tokens} tokens.",
                       param=param, code="context_length_exceeded")


def check_vocabulary_fields(body: ChatCompletionRequest | CompletionRequest,
                            vocab_size: int) -> None:
    if body.top_k is not None and body.top_k > vocab_size:
        raise APIError(400, f"top_k must be -1 or 0 (off) or at most the vocabulary size "
                            f"{vocab_size}, got {body.top_k}", param="top_k", code="invalid_value")
    beyond = [t for t in body.stop_token_ids or () if t >= vocab_size]
    if beyond:
        raise APIError(400, f"stop_token_ids must be below the vocabulary size {vocab_size}, got "
                            f"{beyond[0]}", param="stop_token_ids", code="invalid_value")
    biased = [t for t in body.token_logit_bias() or () if t >= vocab_size]
    if biased:
        raise APIError(400, f"logit_bias keys must be token ids below the vocabulary size "
                            f"{vocab_size}, got {biased[0]}", param="logit_bias",
                       code="invalid_value")


def to_sampling_params(body: ChatCompletionRequest | CompletionRequest, num_prompt_tokens: int,
                       max_model_len: int, vocab_size: int) -> SamplingParams:
    prompt_param = "messages" if isinstance(body, ChatCompletionRequest) else "prompt"
    check_vocabulary_fields(body, vocab_size)
    check_prompt_fits(num_prompt_tokens, max_model_len, prompt_param)
    room = max_model_len - num_prompt_tokens
    limit = body.token_limit
    limit_param = ("max_completion_tokens" if isinstance(body, ChatCompletionRequest)
                   and body.max_completion_tokens is not None else "max_tokens")
    if limit is None:
        limit = room if isinstance(body, ChatCompletionRequest) else min(room, DEFAULT_COMPLETION_MAX_TOKENS)
    if limit > room:
        raise APIError(400, f"This model's maximum context length is {max_model_len} tokens. "
                            f"However, you requested {num_prompt_tokens + limit} tokens "
                            f"({num_prompt_tokens} in the prompt, {limit} for the completion).",
                       param=limit_param, code="context_length_exceeded")
    values = {
        "n": body.n, "temperature": body.temperature, "top_p": body.top_p, "seed": body.seed,
        "presence_penalty": body.presence_penalty, "frequency_penalty": body.frequency_penalty,
        "top_k": body.top_k, "min_p": body.min_p, "repetition_penalty": body.repetition_penalty,
        "min_tokens": body.min_tokens, "ignore_eos": body.ignore_eos,
        "stop_token_ids": body.stop_token_ids, "logprobs": body.num_logprobs,
        "cache_salt": body.cache_salt, "skip_prefix_cache": body.skip_prefix_cache,
        "speculative": body.speculative,
        "logit_bias": body.token_logit_bias(),
        "structured_outputs": structured_outputs_from(body),
    }
    values = {name: value for name, value in values.items() if value is not None}
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    if any(not s for s in stop):
        raise APIError(400, "stop strings must be non-empty", param="stop")
    try:
        return SamplingParams(max_tokens=limit, stop=stop, **values)
    except ValueError as e:  # SamplingParams names the field first ("min_tokens (9) must ...")
        field_name = str(e).split(" ", 1)[0]
        raise APIError(400, str(e), param=field_name if field_name in values else None,
                       code="invalid_value") from e


def isolate_prefix_cache(params: SamplingParams, principal_id: str,
                         isolation: PrefixCacheIsolation) -> SamplingParams:
    """With `--prefix-cache-isolation user`, salt the request by its principal (keeping any salt
    of its own) so no two users ever share cached KV. Length-prefixed, so no request salt can make
    one user's combined salt equal another's."""
    if isolation is PrefixCacheIsolation.NONE:
        return params
    salt = f"user:{len(principal_id)}:{principal_id}:{params.cache_salt or ''}"
    return dataclasses.replace(params, cache_salt=salt)


def sampling_record(params: SamplingParams) -> dict:
    """What is stored with each answer (JSON-safe)."""
    return {"n": params.n, "temperature": params.temperature, "top_p": params.top_p,
            "top_k": params.top_k, "min_p": params.min_p, "seed": params.seed,
            "presence_penalty": params.presence_penalty,
            "frequency_penalty": params.frequency_penalty,
            "repetition_penalty": params.repetition_penalty, "stop": list(params.stop),
            "max_tokens": params.max_tokens, "ignore_eos": params.ignore_eos,
            "logprobs": params.logprobs,
            **({"logit_bias": {str(t): b for t, b in params.logit_bias.items()}}
               if params.logit_bias else {})}
