"""Evaluation: greedy generation and held-out loss against transformers; the promotion gate."""
from __future__ import annotations

import math

import pytest
import torch

from framework.train import SFTExample
from framework.train.evaluate import mean_token_loss
from model.evaluation import EvalCase, accuracy, greedy_generate
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


def test_engine_generation_equals_the_reference_loop(stories):
    from model.evaluation import engine_generate

    tok = stories.tokenizer
    prompts = [tok.encode(t) for t in ("Once upon a time", "Lily saw a big", "The dog", "Tom")]
    ref = greedy_generate(stories.model, prompts, tok.eos_token_ids, max_new_tokens=20)
    assert engine_generate(stories.model, tok, prompts, max_new_tokens=20) == ref
