"""Evaluate a model version and gate its promotion.

Three measurements: held-out loss (mean target-token NLL on held-out chats), task accuracy
(greedy answers containing the expected text, per task family) and a regression suite (the same,
on the domain the current production model already handles). `gate` compares a candidate with the
production baseline and says whether it may be promoted, with the reasons recorded.
Answers come from the serving engine with greedy sampling; `greedy_generate`, a plain loop over a
packed batch without a cache, is the slow reference it is tested against.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from framework.train.data import SFTExample, pack
from framework.train.evaluate import mean_token_loss
from framework.train.packing import packed_attention


@dataclass(frozen=True, slots=True)
class EvalCase:
    messages: list[dict]  # the prompt, ending with a user turn
    expected: str  # the answer is correct when it contains this text (case-insensitive)


@dataclass(slots=True)
class GateDecision:
    passed: bool
    reasons: list[str] = field(default_factory=list)


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


def evaluate(model, tokenizer, held_out: list[SFTExample], tasks: dict[str, list[EvalCase]],
             regression: dict[str, list[EvalCase]]) -> dict:
    """{"held_out_loss", "tasks": {name: acc}, "regression": {name: acc}} for one model."""
    model.eval()
    return {
        "held_out_loss": mean_token_loss(model, held_out) if held_out else None,
        "tasks": {name: accuracy(model, tokenizer, cases) for name, cases in tasks.items()},
        "regression": {name: accuracy(model, tokenizer, cases) for name, cases in regression.items()},
    }


def gate(candidate: dict, baseline: dict | None, max_regression_points: float = 2.0,
         max_loss_increase: float = 0.05) -> GateDecision:
    """May `candidate` replace `baseline`? Both are `evaluate` results.

    Fails when any regression suite drops by more than `max_regression_points` (percentage points)
    or held-out loss rises by more than `max_loss_increase` (relative). A missing baseline passes.
    """
    if baseline is None:
        return GateDecision(True, ["no baseline to compare with"])
    reasons: list[str] = []
    for name, base_acc in baseline.get("regression", {}).items():
        cand_acc = candidate.get("regression", {}).get(name)
        if cand_acc is None:
            reasons.append(f"regression suite {name!r} was not evaluated")
            continue
        drop_points = 100 * (base_acc - cand_acc)
        if drop_points > max_regression_points:
            reasons.append(f"regressed {name} by {drop_points:.1f} points "
                           f"({100 * base_acc:.1f}% -> {100 * cand_acc:.1f}%)")
    base_loss, cand_loss = baseline.get("held_out_loss"), candidate.get("held_out_loss")
    if base_loss is not None and cand_loss is not None and \
            cand_loss > base_loss * (1 + max_loss_increase):
        reasons.append(f"held-out loss rose from {base_loss:.4f} to {cand_loss:.4f}")
    if reasons:
        return GateDecision(False, reasons)
    gains = [f"{name}: {100 * baseline.get('tasks', {}).get(name, 0):.1f}% -> {100 * acc:.1f}%"
             for name, acc in candidate.get("tasks", {}).items()]
    return GateDecision(True, ["no regression beyond thresholds", *gains])
