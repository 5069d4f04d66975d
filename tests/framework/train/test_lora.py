"""LoRA: adapters train alone, and the merged export computes what the adapted model computed."""
from __future__ import annotations

import torch

from framework.train import TrainConfig, apply_lora, merge_lora, train
from framework.train.lora import LoRALinear
from tests.framework.train.conftest import sft_examples, tiny_model

TARGETS = TrainConfig().lora_targets


@torch.no_grad()
def _logits(model, ids):
    return model.compute_logits(model(ids, torch.arange(len(ids))))


def test_merged_export_equals_unmerged_forward():
    model = tiny_model(tie=True)
    assert apply_lora(model, rank=4, alpha=8.0, targets=TARGETS) == 2 * 7
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, LoRALinear):
                module.lora_b.normal_(std=0.05)  # make the adapters matter
    ids = torch.tensor([5, 9, 3, 17, 40, 2, 8])
    unmerged = _logits(model, ids)
    names_before = None
    assert merge_lora(model) == 14
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    names_before = set(dict(tiny_model(tie=True).named_parameters()))
    assert set(dict(model.named_parameters())) == names_before  # exports like the base model
    torch.testing.assert_close(_logits(model, ids), unmerged, atol=1e-5, rtol=1e-5)


def test_lora_training_changes_only_through_adapters():
    base, model = tiny_model(), tiny_model()
    examples = sft_examples(8)
    result = train(model, examples, TrainConfig(learning_rate=1e-2, max_steps=10, lora_rank=4))
    assert result.step_losses[-1] < result.step_losses[0]
    changed = {n for n, p in model.named_parameters()
               if not torch.equal(p, dict(base.named_parameters())[n])}
    assert changed  # merged deltas landed in the base weights
    assert all(n.split(".")[-2] in TARGETS for n in changed)  # norms/embeddings stayed frozen
