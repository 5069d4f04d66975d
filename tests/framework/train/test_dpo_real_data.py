"""DPO on a real trained model (stories260K): toward a preferred story style, and on a small
subset of Anthropic HH-RLHF harmless-base preference pairs (a pipeline check)."""
from __future__ import annotations

import gzip
import json

import torch

from framework.train import PreferenceExample, TrainConfig, train
from framework.train.data import completion_sequence, pack
from framework.train.losses import sequence_logps, token_logps
from model.loader import load_model
from tests.shared_data import SHARED_DIR

SHARED = SHARED_DIR
STORIES = SHARED / "models" / "stories260K-hf"
HH = SHARED / "datasets" / "hh-rlhf-harmless-base-test" / "harmless-base-test.jsonl.gz"


@torch.no_grad()
def _margins(model, pairs: list[PreferenceExample]) -> torch.Tensor:
    """log p(chosen) - log p(rejected) per pair under `model`."""
    seqs = [s for p in pairs for s in (completion_sequence(p.prompt_ids, p.chosen_ids),
                                       completion_sequence(p.prompt_ids, p.rejected_ids))]
    batch = pack(seqs)
    per_seq = sequence_logps(token_logps(model, batch), batch).view(-1, 2)
    return per_seq[:, 0] - per_seq[:, 1]


def _style_pairs(tok, names: list[str]) -> list[PreferenceExample]:
    # Preferred style: happy endings over sad ones, for the same opening.
    pairs = []
    for name in names:
        prompt = tok.encode(f"Once upon a time, there was a little girl named {name}. She was")
        pairs.append(PreferenceExample(prompt, tok.encode(" very happy and she smiled.", add_bos=False),
                                       tok.encode(" very sad and she cried.", add_bos=False)))
    return pairs


def test_dpo_moves_stories260k_toward_the_preferred_style_on_unseen_prompts():
    loaded = load_model(STORIES)
    tok, model = loaded.tokenizer, loaded.model
    train_pairs = _style_pairs(tok, ["Lily", "Sue", "Amy", "Mia", "Ann", "Kim"])
    unseen = _style_pairs(tok, ["Lucy", "Jane"])
    before = _margins(model, unseen)
    result = train(model, train_pairs, TrainConfig(objective="dpo", learning_rate=2e-3,
                                                   max_steps=8, micro_batch_size=6, beta=0.2))
    assert result.step_losses[-1] < result.step_losses[0]
    assert result.step_metrics[-1]["reward_margin"] > result.step_metrics[0]["reward_margin"]
    assert (_margins(model, unseen) - before).min() > 1.0  # generalizes to new names


def _hh_pairs(tok, count: int, max_tokens: int = 48) -> list[PreferenceExample]:
    pairs = []
    with gzip.open(HH, "rt", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            cut = row["chosen"].rfind("\n\nAssistant:") + len("\n\nAssistant:")
            prompt, chosen, rejected = row["chosen"][:cut], row["chosen"][cut:], row["rejected"][cut:]
            if row["rejected"][:cut] != prompt or chosen == rejected:
                continue
            prompt_ids = tok.encode(prompt)[-max_tokens:]
            chosen_ids = tok.encode(chosen, add_bos=False)[:max_tokens]
            rejected_ids = tok.encode(rejected, add_bos=False)[:max_tokens]
            if chosen_ids != rejected_ids:
                pairs.append(PreferenceExample(prompt_ids, chosen_ids, rejected_ids))
            if len(pairs) == count:
                return pairs
    return pairs


def test_dpo_pipeline_on_hh_rlhf_pairs():
    loaded = load_model(STORIES)
    pairs = _hh_pairs(loaded.tokenizer, 16)
    assert len(pairs) == 16
    before = _margins(loaded.model, pairs).mean()
    result = train(loaded.model, pairs, TrainConfig(objective="dpo", learning_rate=1e-3,
                                                    max_steps=6, micro_batch_size=8, beta=0.1))
    assert result.step_losses[-1] < result.step_losses[0]
    assert _margins(loaded.model, pairs).mean() > before + 1.0
