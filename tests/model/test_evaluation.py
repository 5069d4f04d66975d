"""Evaluation: greedy generation and held-out loss against transformers; the promotion gate."""
from __future__ import annotations

import math

import pytest
import torch

from framework.train import SFTExample
from model.evaluation import EvalCase, accuracy, gate, greedy_generate, mean_token_loss
from model.loader import load_model
from tests.model.factories import STORIES_HF

SIMPLE_TEMPLATE = "{% for m in messages %}{{ m['content'] }}{% endfor %}"


@pytest.fixture(scope="module")
def stories():
    loaded = load_model(STORIES_HF)
    loaded.tokenizer.chat_template = SIMPLE_TEMPLATE
    return loaded


@pytest.fixture(scope="module")
def hf_stories():
    import transformers
    return transformers.AutoModelForCausalLM.from_pretrained(STORIES_HF).float().eval()


def test_greedy_generate_matches_transformers(stories, hf_stories):
    tok = stories.tokenizer
    prompts = [tok.encode(t) for t in ("Once upon a time", "Lily saw a big", "The dog")]
    ours = greedy_generate(stories.model, prompts, eos_ids=[], max_new_tokens=12)
    for prompt, got in zip(prompts, ours):
        ref = hf_stories.generate(torch.tensor([prompt]), max_new_tokens=12, do_sample=False)
        assert got == ref[0, len(prompt):].tolist()


def test_held_out_loss_matches_transformers(stories, hf_stories):
    tok = stories.tokenizer
    examples = []
    for prompt, answer in (("Once upon a time", " there was a girl."), ("Tom had", " a red ball.")):
        p, a = tok.encode(prompt), tok.encode(answer, add_bos=False)
        examples.append(SFTExample(p + a, [0] * len(p) + [1] * len(a)))
    nll, count = 0.0, 0
    for ex in examples:
        labels = torch.tensor([t if m else -100 for t, m in zip(ex.input_ids, ex.loss_mask)])
        out = hf_stories(torch.tensor([ex.input_ids]), labels=labels[None])
        n = int((labels[1:] != -100).sum())
        nll, count = nll + float(out.loss) * n, count + n
    assert math.isclose(mean_token_loss(stories.model, examples), nll / count, rel_tol=1e-4)


def test_accuracy_counts_answers_containing_the_expected_text(stories):
    tok = stories.tokenizer
    prompt = [{"role": "user", "content": "Once upon a time"}]
    answer = tok.decode(greedy_generate(stories.model, [tok.apply_chat_template(prompt)], [], 40)[0])
    words = answer.split()
    cases = [EvalCase(prompt, " ".join(words[1:3]).upper()), EvalCase(prompt, "xylophone zebra")]
    assert accuracy(stories.model, tok, cases) == 0.5


BASE = {"held_out_loss": 1.00, "tasks": {"capitals": 0.0},
        "regression": {"arithmetic": 0.90, "dates": 0.80}}


def test_gate_passes_a_candidate_within_thresholds():
    cand = {"held_out_loss": 1.02, "tasks": {"capitals": 0.9},
            "regression": {"arithmetic": 0.89, "dates": 0.80}}
    decision = gate(cand, BASE, max_regression_points=2.0)
    assert decision.passed and any("capitals" in r for r in decision.reasons)


def test_gate_blocks_a_regression_and_records_why():
    cand = {"held_out_loss": 1.2, "tasks": {"capitals": 1.0},
            "regression": {"arithmetic": 0.85, "dates": 0.80}}
    decision = gate(cand, BASE, max_regression_points=2.0, max_loss_increase=0.05)
    assert not decision.passed
    assert any("arithmetic by 5.0 points" in r for r in decision.reasons)
    assert any("held-out loss" in r for r in decision.reasons)
    assert gate({"regression": {}}, BASE).passed is False  # unevaluated suites do not pass
    assert gate(cand, None).passed  # the first version has nothing to regress from


def test_engine_generation_equals_the_reference_loop(stories):
    from model.evaluation import engine_generate

    tok = stories.tokenizer
    prompts = [tok.encode(t) for t in ("Once upon a time", "Lily saw a big", "The dog", "Tom")]
    ref = greedy_generate(stories.model, prompts, tok.eos_token_ids, max_new_tokens=20)
    assert engine_generate(stories.model, tok, prompts, max_new_tokens=20) == ref
