"""Losses against hand-computed references."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from framework.train import losses
from framework.train.data import pack
from tests.framework.train.conftest import sft_examples, tiny_model


def test_packed_token_logps_equal_per_sequence_forward():
    model = tiny_model()
    examples = sft_examples(5)
    batch = pack(examples)
    packed = losses.token_logps(model, batch)
    offset = 0
    for ex in examples:
        n = len(ex.input_ids)
        ids = torch.tensor(ex.input_ids)
        with torch.no_grad():
            logits = model.compute_logits(model(ids, torch.arange(n)))
        ref = torch.log_softmax(logits[:-1], -1).gather(-1, ids[1:, None]).squeeze(-1)
        ref = ref * torch.tensor(ex.loss_mask[1:], dtype=torch.float32)
        torch.testing.assert_close(packed[offset:offset + n - 1], ref, atol=1e-5, rtol=1e-5)
        assert packed[offset + n - 1] == 0  # the last token has no target in its own sequence
        offset += n


def test_packed_sequences_of_very_different_lengths_match_one_by_one_with_gradients():
    # Lengths far apart put the sequences in several padding buckets.
    from framework.train.packing import _buckets
    from framework.train.data import SFTExample

    g = torch.Generator().manual_seed(3)
    lengths = [3, 70, 5, 110, 4, 64, 9]
    examples = [SFTExample(torch.randint(3, 64, (n,), generator=g).tolist(), [0] + [1] * (n - 1))
                for n in lengths]
    assert len(_buckets(lengths)) >= 3
    model = tiny_model(1)
    losses.token_logps(model, pack(examples)).sum().backward()
    packed_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    for ex in examples:
        n = len(ex.input_ids)
        ids = torch.tensor(ex.input_ids)
        logits = model.compute_logits(model(ids, torch.arange(n)))
        torch.log_softmax(logits[:-1], -1).gather(-1, ids[1:, None]).sum().backward()
    for packed, ref in zip(packed_grads, (p.grad for p in model.parameters())):
        torch.testing.assert_close(packed, ref, atol=1e-5, rtol=1e-4)


def test_sft_loss_matches_masked_cross_entropy():
    model = tiny_model()
    examples = sft_examples(4, seed=3)
    batch = pack(examples)
    ours = losses.sft_loss_sum(losses.token_logps(model, batch), batch) / batch.target_mask.sum()
    nll, count = 0.0, 0
    for ex in examples:
        ids = torch.tensor(ex.input_ids)
        with torch.no_grad():
            logits = model.compute_logits(model(ids, torch.arange(len(ids))))[:-1]
        keep = torch.tensor(ex.loss_mask[1:]).bool()
        nll += float(F.cross_entropy(logits[keep], ids[1:][keep], reduction="sum"))
        count += int(keep.sum())
    assert math.isclose(float(ours), nll / count, rel_tol=1e-5)


def test_dpo_loss_is_the_formula():
    pc, pr = torch.tensor([-3.0, -10.0, -2.5]), torch.tensor([-4.0, -9.0, -7.0])
    rc, rr = torch.tensor([-3.5, -9.5, -3.0]), torch.tensor([-3.5, -9.5, -6.0])
    beta = 0.5
    got = losses.dpo_losses(pc, pr, rc, rr, beta)
    for i in range(3):
        margin = (float(pc[i]) - float(rc[i])) - (float(pr[i]) - float(rr[i]))
        expected = -math.log(1 / (1 + math.exp(-beta * margin)))
        assert math.isclose(float(got[i]), expected, rel_tol=1e-6)


def test_kto_loss_is_the_formula():
    policy, ref = torch.tensor([-2.0, -5.0, -1.0, -8.0]), torch.tensor([-3.0, -4.0, -1.5, -6.0])
    desirable = torch.tensor([True, True, False, False])
    beta, z0, wd, wu = 0.2, 0.3, 1.0, 1.5
    got = losses.kto_losses(policy, ref, desirable, z0, beta, wd, wu)
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    for i in range(4):
        r = float(policy[i] - ref[i])
        expected = wd * (1 - sig(beta * (r - z0))) if desirable[i] else wu * (1 - sig(beta * (z0 - r)))
        assert math.isclose(float(got[i]), expected, rel_tol=1e-6)
    # a negative KL estimate is clamped to zero
    torch.testing.assert_close(losses.kto_losses(policy, ref, desirable, -1.0, beta),
                               losses.kto_losses(policy, ref, desirable, 0.0, beta))
