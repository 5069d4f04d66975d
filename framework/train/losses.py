"""SFT, DPO and KTO objectives on per-token and per-sequence log-probabilities.

Every function returns a *sum* over its examples; the trainer divides by the global count
(tokens for SFT, examples for DPO/KTO) so gradient accumulation and data parallelism give exactly
the gradient of one big batch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from framework.train.data import PackedBatch


def token_logps(model, batch: PackedBatch) -> torch.Tensor:
    """(T,) log p(target_t | tokens <= t) under `model` for a packed batch (0 where masked)."""
    from framework.train.packing import differentiable_ops, packed_attention

    with packed_attention(batch.seq_lens), differentiable_ops():
        hidden = model(batch.input_ids, batch.positions)  # (T, H)
    logits = model.compute_logits(hidden).float()  # (T, V)
    logps = torch.log_softmax(logits, dim=-1)
    picked = logps.gather(-1, batch.target_ids.unsqueeze(-1)).squeeze(-1)  # (T,)
    return picked * batch.target_mask


def sequence_logps(token_logp: torch.Tensor, batch: PackedBatch) -> torch.Tensor:
    """(B,) summed target log-probabilities per packed sequence."""
    out = token_logp.new_zeros(batch.num_seqs)
    return out.index_add(0, batch.seq_index, token_logp)


def sft_loss_sum(token_logp: torch.Tensor, batch: PackedBatch) -> torch.Tensor:
    """Sum of masked token cross-entropies."""
    return -(token_logp * batch.target_mask).sum()


def dpo_losses(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor,
               ref_chosen: torch.Tensor, ref_rejected: torch.Tensor, beta: float) -> torch.Tensor:
    """(P,) DPO loss per pair: -log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r)))."""
    margin = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    return -F.logsigmoid(beta * margin)


def kto_losses(policy: torch.Tensor, ref: torch.Tensor, desirable: torch.Tensor,
               kl_estimate: torch.Tensor | float, beta: float,
               desirable_weight: float = 1.0, undesirable_weight: float = 1.0) -> torch.Tensor:
    """(N,) KTO loss per example (Ethayarajh et al. 2024).

    reward r = policy - ref; desirable: w_d * (1 - sigmoid(beta * (r - z0))),
    undesirable: w_u * (1 - sigmoid(beta * (z0 - r))), with z0 the (detached, >= 0) KL estimate.
    """
    reward = policy - ref
    z0 = torch.as_tensor(kl_estimate, dtype=reward.dtype).clamp(min=0).detach()
    good = desirable_weight * (1 - torch.sigmoid(beta * (reward - z0)))
    bad = undesirable_weight * (1 - torch.sigmoid(beta * (z0 - reward)))
    return torch.where(desirable.bool(), good, bad)
