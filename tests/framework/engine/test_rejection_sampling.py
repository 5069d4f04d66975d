"""Rejection sampling (speculative decoding) emits tokens distributed as the target p, whatever the
proposal q. Known p and q over a 4-token vocabulary, many seeded draws, chi-square against p; the
same statistic on a naive verifier that keeps every draft must fail (the test can fail)."""
from __future__ import annotations

import torch

from framework.engine.speculative.rejection import rejection_sample

# chi-square critical values at p = 0.001 (df = categories - 1)
CHI2_CRITICAL_DF3 = 16.27
NUM_TRIALS = 6000

P = torch.tensor([[0.50, 0.30, 0.15, 0.05],   # target after the last real token
                  [0.10, 0.20, 0.30, 0.40],   # after draft 1 (context-free in this synthetic test)
                  [0.25, 0.25, 0.25, 0.25]])  # after draft 2 (the bonus token)
Q = torch.tensor([[0.05, 0.15, 0.30, 0.50],   # the proposal disagrees with the target on purpose
                  [0.40, 0.30, 0.20, 0.10]])


def _chi2(tokens: list[int], probs: torch.Tensor) -> float:
    counts = torch.bincount(torch.tensor(tokens), minlength=probs.numel()).double()
    expected = probs.double() * len(tokens)
    return float(((counts - expected) ** 2 / expected).sum())


def _emitted(verifier, q: torch.Tensor | None) -> tuple[list[int], list[int]]:
    """First emitted token of every trial; second one of the trials that kept draft 1."""
    generator = torch.Generator().manual_seed(1234)
    firsts, seconds = [], []
    for _ in range(NUM_TRIALS):
        if q is None:  # a deterministic proposal (prompt lookup): always the same drafts
            drafts = [1, 3]
        else:
            drafts = [int(torch.multinomial(q[i], 1, generator=generator)) for i in range(2)]
        num_accepted, token = verifier(P, q, drafts, generator)
        emitted = drafts[:num_accepted] + [token]
        firsts.append(emitted[0])
        if len(emitted) > 1:
            seconds.append(emitted[1])
    return firsts, seconds


def _accept_all(p, q, drafts, generator):
    return len(drafts), int(torch.multinomial(p[len(drafts)], 1, generator=generator))


def test_rejection_sampling_preserves_the_target_distribution():
    firsts, seconds = _emitted(rejection_sample, Q)
    assert _chi2(firsts, P[0]) < CHI2_CRITICAL_DF3
    assert len(seconds) > NUM_TRIALS // 4
    assert _chi2(seconds, P[1]) < CHI2_CRITICAL_DF3


def test_deterministic_proposals_are_exact_too():
    firsts, seconds = _emitted(rejection_sample, None)
    assert _chi2(firsts, P[0]) < CHI2_CRITICAL_DF3
    assert _chi2(seconds, P[1]) < CHI2_CRITICAL_DF3


def test_the_statistic_rejects_a_verifier_that_keeps_every_draft():
    firsts, _ = _emitted(_accept_all, Q)
    assert _chi2(firsts, P[0]) > 10 * CHI2_CRITICAL_DF3


def test_a_draft_the_target_rules_out_is_never_kept():
    p = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    q = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    for seed in range(50):
        assert rejection_sample(p, q, [0], torch.Generator().manual_seed(seed)) == (0, 1)
        assert rejection_sample(p, None, [1], torch.Generator().manual_seed(seed)) == (1, 2)
