"""Evaluate a model: greedy answers to evaluation cases and their accuracy.

Answers come from the serving engine with greedy sampling; `greedy_generate`, a plain loop over a
packed batch without a cache, is the slow reference it is tested against. The flywheel's
promotion gate (app.flywheel.gate) builds on these.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from framework.train.packing import packed_attention


@dataclass(frozen=True, slots=True)
class EvalCase:
    messages: list[dict]  # the prompt, ending with a user turn
    expected: str  # the answer is correct when it contains this text (case-insensitive)


@torch.no_grad()
def greedy_generate(model, prompts: list[list[int]], eos_ids: list[int], max_new_tokens: int = 40,
                    micro_batch_size: int = 64) -> list[list[int]]:
    """Greedy completions (without the eos) for each prompt's token ids."""
    out: list[list[int]] = []
    for start in range(0, len(prompts), micro_batch_size):
        out += _greedy_batch(model, prompts[start:start + micro_batch_size], set(eos_ids),
                             max_new_tokens)
    return out


def _greedy_batch(model, prompts, eos_ids, max_new_tokens) -> list[list[int]]:
    seqs = [list(p) for p in prompts]
    done = [False] * len(seqs)
    completions: list[list[int]] = [[] for _ in seqs]
    for _ in range(max_new_tokens):
        active = [i for i, d in enumerate(done) if not d]
        if not active:
            break
        lens = [len(seqs[i]) for i in active]
        ids = torch.tensor([t for i in active for t in seqs[i]])
        positions = torch.cat([torch.arange(n) for n in lens])
        with packed_attention(lens):
            hidden = model(ids, positions)
        last_rows = torch.tensor(lens).cumsum(0) - 1
        next_ids = model.compute_logits(hidden[last_rows]).argmax(-1).tolist()
        for i, token in zip(active, next_ids):
            if token in eos_ids:
                done[i] = True
                continue
            seqs[i].append(token)
            completions[i].append(token)
    return completions


@torch.no_grad()
def engine_generate(model, tokenizer, prompts: list[list[int]], max_new_tokens: int = 40,
                    block_size: int = 16) -> list[list[int]]:
    """The same greedy completions as `greedy_generate`, through the serving engine (KV cache,
    continuous batching): several times faster. The cache is sized so every prompt fits at once."""
    from framework.engine import LLMEngine
    from shared import EngineConfig, SamplingParams

    blocks = sum(-(-(len(p) + max_new_tokens) // block_size) for p in prompts) + 1
    engine = LLMEngine(model, tokenizer, EngineConfig(
        block_size=block_size, num_kv_blocks=blocks, max_num_seqs=max(len(prompts), 1),
        max_num_batched_tokens=4096, enable_prefix_caching=False))
    params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens)
    for i, prompt in enumerate(prompts):
        engine.add_request(str(i), list(prompt), params)
    finished: dict[str, list[int]] = {}
    while engine.has_unfinished_requests():
        for output in engine.step():
            if output.finished:
                finished[output.request_id] = list(output.outputs[0].token_ids)
    eos = set(tokenizer.eos_token_ids)
    return [[t for t in finished[str(i)] if t not in eos] for i in range(len(prompts))]


def answers(model, tokenizer, cases: list[EvalCase], max_new_tokens: int = 40) -> list[str]:
    prompts = [tokenizer.apply_chat_template(c.messages, add_generation_prompt=True) for c in cases]
    outs = engine_generate(model, tokenizer, prompts, max_new_tokens)
    return [tokenizer.decode(ids) for ids in outs]


def accuracy(model, tokenizer, cases: list[EvalCase]) -> float:
    """Fraction of cases whose greedy answer contains the expected text."""
    if not cases:
        raise ValueError("no evaluation cases")
    got = answers(model, tokenizer, cases)
    return sum(c.expected.lower() in a.lower() for c, a in zip(cases, got)) / len(cases)
