"""filter_logits semantics (reference and CPU fast path) and sample's per-row determinism."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from chip.ops.sampling import _filter_nucleus_rows, filter_logits, filter_logits_fast, sample

IMPLS = pytest.mark.parametrize("impl", [filter_logits, filter_logits_fast], ids=["reference", "cpu"])


def _params(batch, top_k=0, top_p=1.0, min_p=0.0):
    return (torch.full((batch,), top_k, dtype=torch.long), torch.full((batch,), float(top_p)),
            torch.full((batch,), float(min_p)))


def _kept(filtered: torch.Tensor) -> set[int]:
    return set(torch.isfinite(filtered).nonzero().flatten().tolist())


@IMPLS
def test_everything_disabled_keeps_every_token(impl):
    # top_p = 1 must not drop the tail even where the float32 cumulative sum reaches 1 early.
    logits = torch.randn(4, 32000, generator=torch.Generator().manual_seed(0)) * 3
    out = impl(logits, *_params(4))
    assert torch.equal(out, logits)


@IMPLS
def test_top_k_one_and_tiny_top_p_keep_only_the_argmax(impl):
    logits = torch.randn(3, 101, generator=torch.Generator().manual_seed(1))
    for params in (_params(3, top_k=1), _params(3, top_p=1e-6), _params(3, min_p=1.0)):
        out = impl(logits, *params)
        for row in range(3):
            assert _kept(out[row]) == {int(logits[row].argmax())}
            assert out[row, logits[row].argmax()] == logits[row].max()


@IMPLS
def test_top_k_larger_than_vocab_drops_nothing(impl):
    logits = torch.randn(2, 10)
    assert torch.equal(impl(logits, *_params(2, top_k=50)), logits)


@IMPLS
def test_already_masked_tokens_stay_masked(impl):
    logits = torch.tensor([[0.0, float("-inf"), 1.0, float("-inf"), 0.5]])
    out = impl(logits, *_params(1, top_k=4, top_p=0.99))
    assert _kept(out[0]) == {0, 2, 4}


@IMPLS
def test_rows_are_filtered_independently(impl):
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(4, 300, generator=gen)
    top_k = torch.tensor([0, 20, 5, 0])
    top_p = torch.tensor([1.0, 0.8, 1.0, 0.5])
    min_p = torch.tensor([0.1, 0.0, 0.0, 0.0])
    batched = impl(logits, top_k, top_p, min_p)
    for row in range(4):
        alone = impl(logits[row:row + 1], top_k[row:row + 1], top_p[row:row + 1], min_p[row:row + 1])
        assert torch.equal(batched[row:row + 1], alone)


# ---- properties, against an independent float64 computation

row_logits = st.lists(st.floats(-8, 8, allow_nan=False, width=32), min_size=2, max_size=40,
                      unique=True)


@settings(max_examples=150, deadline=None)
@given(row=row_logits, top_p=st.floats(0.01, 1.0))
def test_top_p_keeps_the_minimal_nucleus(row, top_p):
    logits = torch.tensor([row])
    probs = np.sort(torch.softmax(logits.double(), -1).numpy()[0])[::-1]
    cumulative = np.cumsum(probs)
    # Stay away from the float32 rounding boundary of the threshold itself.
    assume(np.min(np.abs(cumulative - top_p)) > 1e-5)
    minimal = len(probs) if top_p >= 1 else int(np.argmax(cumulative >= top_p)) + 1
    for impl in (filter_logits, filter_logits_fast):
        kept = _kept(impl(logits, *_params(1, top_p=top_p))[0])
        assert len(kept) == minimal
        # ...and it is the most likely tokens: every kept logit beats every dropped one.
        dropped = set(range(len(row))) - kept
        if dropped:
            assert min(row[i] for i in kept) > max(row[i] for i in dropped)


@settings(max_examples=150, deadline=None)
@given(row=row_logits, top_k=st.integers(-1, 45), top_p=st.floats(0.01, 1.0),
       min_p=st.floats(0.0, 1.0))
def test_argmax_always_kept_and_fast_path_equals_reference(row, top_k, top_p, min_p):
    logits = torch.tensor([row])
    params = _params(1, top_k, top_p, min_p)
    # Both paths sum the same probabilities in different orders; keep the thresholds clear of
    # float32 rounding so that a last-bit difference cannot decide a token.
    kept_by_k = sorted(row, reverse=True)[: top_k if top_k > 0 else len(row)]
    probs = torch.softmax(torch.tensor(kept_by_k, dtype=torch.float64), -1)
    assume(bool(((probs.cumsum(0) - top_p).abs() > 1e-5).all()) or top_p >= 1)
    # (The argmax, first, always stays whatever its probability.)
    assume(bool(((probs[1:] - min_p * probs[0]).abs() > 1e-6).all()) or min_p == 0.0)
    want = filter_logits(logits, *params)
    got = filter_logits_fast(logits, *params)
    assert int(logits.argmax()) in _kept(want[0])
    if top_k > 0:
        assert len(_kept(want[0])) <= top_k
    # Kept tokens keep their logits untouched.
    kept = sorted(_kept(want[0]))
    assert torch.equal(want[0, kept], logits[0, kept])
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    if top_k <= 0 and top_p < 1:
        # The nucleus search with a tiny first candidate count, so small vocabularies exercise it.
        nucleus = _filter_nucleus_rows(logits, *params, first_candidates=2)
        torch.testing.assert_close(nucleus, want, rtol=0, atol=0)


@settings(max_examples=100, deadline=None)
@given(row=row_logits, min_p=st.floats(0.0, 1.0))
def test_min_p_drops_exactly_the_tokens_below_the_floor(row, min_p):
    probs = torch.softmax(torch.tensor(row, dtype=torch.float64), -1)
    argmax = int(probs.argmax())
    floor = min_p * probs[argmax]
    others = torch.cat([probs[:argmax], probs[argmax + 1:]])
    assume(bool(((others - floor).abs() > 1e-6).all()))  # clear of float32 rounding
    want = {i for i, p in enumerate(probs.tolist()) if p >= floor} | {argmax}
    for impl in (filter_logits, filter_logits_fast):
        assert _kept(impl(torch.tensor([row]), *_params(1, min_p=min_p))[0]) == want


@pytest.mark.parametrize("spread", [0.5, 3.0, 12.0])  # flat (falls back to the full sort) .. peaked
def test_nucleus_search_equals_the_full_sort_on_a_large_vocabulary(spread):
    logits = torch.randn(6, 32000, generator=torch.Generator().manual_seed(4)) * spread
    top_p = torch.tensor([0.5, 0.9, 0.95, 0.99, 0.3, 0.9])
    min_p = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.01])
    top_k = torch.zeros(6, dtype=torch.long)
    assert torch.equal(filter_logits_fast(logits, top_k, top_p, min_p),
                       filter_logits(logits, top_k, top_p, min_p))


# ---- sample

def test_sample_row_depends_only_on_its_own_generator():
    gen = torch.Generator().manual_seed(3)
    probs = torch.softmax(torch.randn(6, 500, generator=gen), -1)
    alone = sample(probs[4:5], [torch.Generator().manual_seed(1234)])
    for others in ([None] * 4, [torch.Generator().manual_seed(s) for s in range(4)]):
        gens = others + [torch.Generator().manual_seed(1234), None]
        batched = sample(probs, gens)
        assert int(batched[4]) == int(alone[0])


def test_sample_follows_the_distribution_and_never_picks_zero_probability():
    probs = torch.tensor([[0.0, 0.2, 0.8, 0.0]])
    gen = torch.Generator().manual_seed(5)
    draws = [int(sample(probs, [gen])[0]) for _ in range(2000)]
    counts = np.bincount(draws, minlength=4)
    assert counts[0] == counts[3] == 0
    # Binomial(2000, 0.8): sd ~ 18, so 1600 +- 90 is a 5-sigma band (and the seed is fixed).
    assert 1510 < counts[2] < 1690
