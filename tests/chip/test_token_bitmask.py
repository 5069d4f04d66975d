"""apply_token_bitmask: reference and fast path against a per-token Python reading of the bits."""
from __future__ import annotations

import pytest
import torch

from chip import dispatch
from chip.ops.token_bitmask import apply_token_bitmask, apply_token_bitmask_fast

IMPLS = pytest.mark.parametrize("impl", [apply_token_bitmask, apply_token_bitmask_fast],
                                ids=["reference", "fast"])


def _expected(logits: torch.Tensor, bitmask: torch.Tensor, rows: list[int]) -> torch.Tensor:
    out = logits.clone()
    for j, row in enumerate(rows):
        for token in range(logits.shape[1]):
            word = token // 32
            allowed = word < bitmask.shape[1] and (int(bitmask[j, word]) >> (token % 32)) & 1
            if not allowed:
                out[row, token] = float("-inf")
    return out


@IMPLS
@pytest.mark.parametrize("vocab, words", [(1823, 57), (781, 25), (64, 2), (100, 3)])
def test_masks_exactly_the_cleared_bits_of_the_listed_rows(impl, vocab, words):
    gen = torch.Generator().manual_seed(vocab)
    logits = torch.randn(7, vocab, generator=gen)
    rows = [0, 3, 6]
    # random words, including the sign bit (bit 31) and all-zero / all-one words
    bitmask = torch.randint(-(2**31), 2**31 - 1, (3, words), dtype=torch.int64, generator=gen)
    bitmask = bitmask.to(torch.int32)
    bitmask[1, 0], bitmask[2, 1] = 0, -1
    out = impl(logits, bitmask, torch.tensor(rows))
    assert torch.equal(out, _expected(logits, bitmask, rows))
    assert torch.equal(out[[1, 2, 4, 5]], logits[[1, 2, 4, 5]])  # free rows untouched


@IMPLS
def test_tokens_past_the_bitmask_are_disallowed(impl):
    logits = torch.zeros(1, 70)
    bitmask = torch.full((1, 2), -1, dtype=torch.int32)  # covers 64 tokens
    out = impl(logits, bitmask, torch.tensor([0]))
    assert torch.isfinite(out[0, :64]).all() and torch.isneginf(out[0, 64:]).all()


def test_dispatch_picks_the_fast_path_on_cpu_and_the_reference_by_name():
    assert dispatch("apply_token_bitmask", "cpu") is apply_token_bitmask_fast
    from chip.dispatch import implementations

    assert implementations("apply_token_bitmask")["reference"] is apply_token_bitmask


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fast_path_on_cuda_matches_the_reference():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 1823, generator=gen)
    bitmask = torch.randint(-(2**31), 2**31 - 1, (2, 57), generator=gen).to(torch.int32)
    rows = torch.tensor([1, 4])
    want = apply_token_bitmask(logits, bitmask, rows)
    got = dispatch("apply_token_bitmask", "cuda")(logits.cuda(), bitmask.cuda(), rows.cuda())
    assert torch.equal(got.cpu(), want)
