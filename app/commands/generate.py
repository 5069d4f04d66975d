"""`flywheel generate`: stream a model's continuation of a prompt to stdout.

The loop here re-runs the whole sequence every step (no KV cache): simple and exact, meant to be
replaced by the engine. stdout carries only generated text; logs go to stderr.
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
    """Yield new token ids one at a time until an eos id (not yielded) or `params.max_tokens`.

    Each step runs the model over the whole sequence and samples from the last position's
    logits with the chip `filter_logits` and `sample` ops.
    """
    import torch

    from chip import dispatch

    model, config = loaded.model, loaded.config
    if not prompt_ids:
        raise ValueError("the prompt is empty and the tokenizer has no BOS token to start from")
    room = config.max_position_embeddings - len(prompt_ids)
    if room <= 0:
        raise ValueError(f"prompt has {len(prompt_ids)} tokens; the model's context is "
                         f"{config.max_position_embeddings}")
    max_new = min(params.max_tokens or room, room)
    device = next(model.parameters()).device
    generator = torch.Generator(device=device)
    generator.manual_seed(params.seed if params.seed is not None else torch.seed())
    stop_ids = set(params.stop_token_ids)
    if not params.ignore_eos:
        stop_ids |= set(config.eos_token_ids)
    ids = list(prompt_ids)
    for _ in range(max_new):
        with torch.inference_mode():
            tokens = torch.tensor(ids, device=device)
            hidden = model(tokens, torch.arange(len(ids), device=device))
            logits = model.compute_logits(hidden[-1:])  # (1, V) float32
        token_id = _choose(logits, params, generator, dispatch)
        if token_id in stop_ids:
            return
        ids.append(token_id)
        yield token_id


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


def _choose(logits, params, generator, dispatch) -> int:
    import torch

    if params.greedy:
        return int(logits.argmax(dim=-1)[0])
    rows = logits.shape[0]
    filtered = dispatch("filter_logits", logits.device.type)(
        logits / params.temperature, torch.full((rows,), params.top_k, device=logits.device),
        torch.full((rows,), params.top_p, device=logits.device),
        torch.full((rows,), params.min_p, device=logits.device))
    probs = filtered.softmax(dim=-1)
    return int(dispatch("sample", logits.device.type)(probs, [generator])[0])
