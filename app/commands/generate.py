"""`flywheel generate`: stream a model's continuation of a prompt to stdout.

Tokens come from the inference engine (`app.llm.LLM.stream`: paged KV cache, one request), one
step at a time. stdout carries only generated text; logs go to stderr.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator
from typing import Annotated

import typer

logger = logging.getLogger(__name__)
_REPLACEMENT_CHAR = "\ufffd"  # an incomplete UTF-8 sequence at the end of a decode


def command(
    model: Annotated[str, typer.Option("--model", help="Hugging Face model directory.")],
    prompt: Annotated[str, typer.Option(help="Text to continue ('' starts at BOS).")] = "",
    max_tokens: Annotated[int, typer.Option(help="Most new tokens.")] = 128,
    temperature: Annotated[float, typer.Option(help="0 is greedy.")] = 1.0,
    top_p: Annotated[float, typer.Option(help="Nucleus probability mass.")] = 1.0,
    seed: Annotated[int | None, typer.Option(help="Seed for sampling.")] = None,
    chat: Annotated[bool, typer.Option(help="Wrap the prompt in the chat template.")] = False,
    dtype: Annotated[str | None, typer.Option(help="Default: the checkpoint's.")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1, ...")] = "cpu",
) -> None:
    """Generate text from a prompt, streamed to stdout."""
    from model.loader import load_model
    from shared import SamplingParams

    params = SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed)
    loaded = load_model(model, dtype=dtype, device=device)
    if chat:
        prompt_ids = loaded.tokenizer.apply_chat_template([{"role": "user", "content": prompt}])
    else:
        prompt_ids = loaded.tokenizer.encode(prompt, add_bos=True)
    started, generated = time.perf_counter(), []

    def tracked() -> Iterator[int]:
        for token_id in stream_generate(loaded, prompt_ids, params):
            generated.append(token_id)
            yield token_id

    try:
        for delta in stream_text(loaded.tokenizer, prompt_ids, tracked()):
            sys.stdout.write(delta)
            sys.stdout.flush()
        sys.stdout.write("\n")
        sys.stdout.flush()
    except BrokenPipeError:  # `flywheel generate ... | head`: the reader left, stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    elapsed = time.perf_counter() - started
    logger.info("%d tokens in %.2f s (%.1f tokens/s)", len(generated), elapsed,
                len(generated) / max(elapsed, 1e-9))


def stream_generate(loaded, prompt_ids: list[int], params) -> Iterator[int]:
    """Yield new token ids as the engine produces them, until an eos id of the model's config or a
    stop id (neither yielded) or `params.max_tokens`. Sampling is reproducible for a given seed;
    with no seed each call draws a fresh one."""
    import dataclasses
    import secrets

    from app.llm import LLM

    config = loaded.config
    if not prompt_ids:
        raise ValueError("the prompt is empty and the tokenizer has no BOS token to start from")
    room = config.max_position_embeddings - len(prompt_ids)
    if room <= 0:
        raise ValueError(f"prompt has {len(prompt_ids)} tokens; the model's context is "
                         f"{config.max_position_embeddings}")
    max_new = min(params.max_tokens or room, room)
    stop_ids = set(params.stop_token_ids) | (set() if params.ignore_eos else set(config.eos_token_ids))
    params = dataclasses.replace(
        params, max_tokens=max_new, stop_token_ids=sorted(stop_ids),
        seed=params.seed if params.seed is not None else secrets.randbits(63))
    # A pool just big enough for this one sequence (no memory-fraction sizing for a CLI run).
    block_size = 16
    llm = LLM.from_loaded(loaded, block_size=block_size, max_num_seqs=1, enable_prefix_caching=False,
                          num_kv_blocks=-(-(len(prompt_ids) + max_new) // block_size) + 1)
    sent = 0
    for output in llm.stream(list(prompt_ids), params):
        new_ids = output.outputs[0].token_ids
        for token_id in new_ids[sent:]:
            if token_id in stop_ids:
                return
            yield token_id
        sent = len(new_ids)


def stream_text(tokenizer, prompt_ids: list[int], token_ids: Iterator[int]) -> Iterator[str]:
    """Turn a stream of new ids into text deltas. Decodes prompt + new ids so word-leading spaces
    come out right, and holds back a trailing incomplete UTF-8 sequence until it completes."""
    ids, emitted = list(prompt_ids), 0
    prompt_text = tokenizer.decode(ids)
    for token_id in token_ids:
        ids.append(token_id)
        text = tokenizer.decode(ids)[len(prompt_text):]
        if text.endswith(_REPLACEMENT_CHAR):
            continue
        if len(text) > emitted:
            yield text[emitted:]
            emitted = len(text)
