"""add_lora: the reference, the segment loop and the dense fast path against a per-row loop in
float64, on irregular shapes, with rows of no adapter, one adapter, and several mixed."""
from __future__ import annotations

import pytest
import torch

from chip import dispatch
from chip.ops.lora import add_lora, add_lora_dense, add_lora_segments, lora_row_scales

IMPLS = pytest.mark.parametrize("impl", [add_lora, add_lora_segments, add_lora_dense],
                                ids=["reference", "segments", "dense"])


def _slots(n: int, rank: int, d_in: int, d_out: int, dtype: torch.dtype, gen: torch.Generator):
    lora_a = torch.randn(n, rank, d_in, generator=gen).to(dtype)
    stored_b = torch.randn(n, rank, d_out, generator=gen).to(dtype)  # the callers' layout
    return lora_a, stored_b.transpose(1, 2)  # B as (n, out, r)


def _expected(y, x, indices, lora_a, lora_b, scalings) -> torch.Tensor:
    out = y.double().clone()
    for t, k in enumerate(indices.tolist()):
        if k >= 0:
            a, b = lora_a[k].double(), lora_b[k].double()
            out[t] += float(scalings[k]) * (b @ (a @ x[t].double()))
    return out


@IMPLS
@pytest.mark.parametrize("rows, d_in, d_out, n, rank", [(37, 781, 183, 4, 8), (1, 96, 50, 1, 16),
                                                        (64, 130, 257, 3, 5)])
def test_matches_a_per_row_loop(impl, rows, d_in, d_out, n, rank):
    gen = torch.Generator().manual_seed(rows * d_in)
    x = torch.randn(rows, d_in, generator=gen)
    y = torch.randn(rows, d_out, generator=gen)
    lora_a, lora_b = _slots(n, rank, d_in, d_out, torch.float32, gen)
    scalings = torch.rand(n, generator=gen) * 2 + 0.5
    indices = torch.randint(-1, n, (rows,), generator=gen)
    indices[0] = n - 1  # at least one row with an adapter
    expected = _expected(y, x, indices, lora_a, lora_b, scalings)
    out = impl(y.clone(), x, indices, lora_a, lora_b, scalings)
    torch.testing.assert_close(out.double(), expected, atol=1e-3, rtol=1e-4)
    base_rows = indices < 0
    assert torch.equal(out[base_rows], y[base_rows])  # rows without an adapter are untouched


@IMPLS
def test_bf16_within_bf16_rounding(impl):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(48, 576, generator=gen).bfloat16()
    y = torch.randn(48, 1536, generator=gen).bfloat16()
    lora_a, lora_b = _slots(4, 16, 576, 1536, torch.bfloat16, gen)
    lora_a, lora_b = lora_a * 0.05, lora_b * 0.05
    scalings = torch.tensor([2.0, 1.0, 0.5, 4.0])
    indices = torch.arange(48) % 5 - 1
    expected = _expected(y, x, indices, lora_a, lora_b, scalings)
    out = impl(y.clone(), x, indices, lora_a, lora_b, scalings)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.double(), expected, atol=0.05, rtol=0.02)


def test_dense_takes_a_precomputed_row_mask_and_only_the_used_slots():
    gen = torch.Generator().manual_seed(2)
    x, y = torch.randn(9, 40, generator=gen), torch.randn(9, 30, generator=gen)
    lora_a, lora_b = _slots(4, 6, 40, 30, torch.float32, gen)
    scalings = torch.tensor([1.0, 2.0, 3.0, 4.0])
    indices = torch.tensor([0, 1, -1, 1, 0, -1, 1, 1, 0])  # slots 2 and 3 unused
    expected = add_lora(y, x, indices, lora_a, lora_b, scalings)
    row_scales = lora_row_scales(indices, scalings[:2], 6, x.dtype)
    out = add_lora_dense(y.clone(), x, indices, lora_a[:2], lora_b[:2], scalings[:2], row_scales)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-5)


def test_mismatched_shapes_are_refused():
    x, y = torch.randn(3, 8), torch.randn(3, 5)
    lora_a, lora_b = torch.randn(2, 4, 8), torch.randn(2, 6, 4)  # out 6 != 5
    with pytest.raises(AssertionError, match="do not match"):
        add_lora_dense(y, x, torch.zeros(3, dtype=torch.long), lora_a, lora_b, torch.ones(2))


def test_dispatch_picks_the_dense_fast_path_on_cpu():
    assert dispatch("add_lora", "cpu") is add_lora_dense
    from chip.dispatch import implementations
    assert implementations("add_lora")["reference"] is add_lora


def test_dense_computes_in_the_slots_dtype_for_bf16_activations():
    # bf16 x and y with float32 slots: the small-step path of framework.layers.lora
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(5, 96, generator=gen).bfloat16()
    y = torch.randn(5, 80, generator=gen).bfloat16()
    lora_a, lora_b = _slots(2, 8, 96, 80, torch.float32, gen)
    scalings = torch.tensor([0.5, 2.0])
    indices = torch.tensor([1, -1, 0, 1, 0])
    expected = _expected(y, x, indices, lora_a, lora_b, scalings)
    out = add_lora_dense(y.clone(), x, indices, lora_a, lora_b, scalings)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.double(), expected, atol=0.1, rtol=0.01)
