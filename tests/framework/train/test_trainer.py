"""The training loop: learning, accumulation equivalence, DPO/KTO progress, bad input."""
from __future__ import annotations

import pytest

from framework.train import TrainConfig, train
from framework.train.evaluate import mean_token_loss
from tests.framework.train.conftest import (kto_examples, max_param_diff, preference_examples,
                                            sft_examples, tiny_model)


def test_sft_loss_decreases_and_held_out_loss_drops():
    model = tiny_model()
    examples = sft_examples(16)
    before = mean_token_loss(model, examples)
    result = train(model, examples, TrainConfig(learning_rate=1e-2, max_steps=30,
                                                micro_batch_size=8))
    assert result.step_losses[-1] < 0.5 * result.step_losses[0]
    assert mean_token_loss(model, examples) < 0.5 * before
    assert result.num_tokens > 0 and result.tokens_per_s > 0


def test_gradient_accumulation_matches_one_big_batch():
    examples = sft_examples(24, seed=1)
    big, accumulated = tiny_model(), tiny_model()
    train(big, examples, TrainConfig(learning_rate=1e-2, max_steps=4, micro_batch_size=8))
    train(accumulated, examples, TrainConfig(learning_rate=1e-2, max_steps=4, micro_batch_size=2,
                                             grad_accum_steps=4))
    assert max_param_diff(big, accumulated) < 1e-5


def test_dpo_improves_chosen_vs_rejected_margin():
    model = tiny_model()
    result = train(model, preference_examples(12), TrainConfig(
        objective="dpo", learning_rate=5e-3, max_steps=12, micro_batch_size=6, beta=0.5))
    assert result.step_metrics[0]["reward_margin"] == pytest.approx(0.0, abs=1e-4)
    assert result.step_losses[-1] < result.step_losses[0]
    assert result.step_metrics[-1]["reward_margin"] > 0.5
    assert result.step_metrics[-1]["reward_accuracy"] > 0.8


def test_kto_raises_desirable_and_lowers_undesirable_rewards():
    model = tiny_model()
    examples = kto_examples(12)
    result = train(model, examples, TrainConfig(objective="kto", learning_rate=5e-3, max_steps=12,
                                                micro_batch_size=12, beta=0.5))
    assert result.step_losses[-1] < result.step_losses[0]


def test_bf16_autocast_trains():
    model = tiny_model()
    result = train(model, sft_examples(8), TrainConfig(learning_rate=1e-2, max_steps=6, bf16=True))
    assert result.step_losses[-1] < result.step_losses[0]


def test_bad_input_is_a_value_error():
    with pytest.raises(ValueError, match="objective"):
        TrainConfig(objective="ppo")
    with pytest.raises(ValueError, match="needs PreferenceExample"):
        train(tiny_model(), sft_examples(2), TrainConfig(objective="dpo", max_steps=1))
    with pytest.raises(ValueError, match="no training examples"):
        train(tiny_model(), [], TrainConfig(max_steps=1))


def test_kto_example_weights_scale_the_loss():
    from dataclasses import replace

    examples = kto_examples(8)
    config = TrainConfig(objective="kto", learning_rate=5e-3, max_steps=1, micro_batch_size=8,
                         beta=0.5)
    full = train(tiny_model(), examples, config).step_losses[0]
    half = train(tiny_model(), [replace(e, weight=0.5) for e in examples], config).step_losses[0]
    assert half == pytest.approx(full / 2, rel=1e-4)
    model = tiny_model()
    train(model, [replace(e, weight=0.0) for e in examples], config)
    assert max_param_diff(model, tiny_model()) == 0.0  # weight 0: nothing learned
    with pytest.raises(ValueError, match="weight"):
        replace(examples[0], weight=-1.0)
