"""The int8 GEMV kernel (chip/native/int8_gemv.c) against a float64 product with the dequantized
weights, on ragged shapes, bf16 and float32, 1-8 rows, 1 and 2 threads."""
import os
import signal
import threading

import pytest
import torch

from chip.ops import int8_matmul_native as native
from chip.ops.int8_matmul import dequantize_int8, int8_matmul, int8_matmul_cpu, quantize_int8

requires_bf16 = pytest.mark.skipif(not native._dtype_supported(torch.bfloat16),
                                   reason="no AVX-512 (VNNI or BF16) or no C compiler")
requires_f32 = pytest.mark.skipif(not native._dtype_supported(torch.float32),
                                  reason="no AVX-512 or no C compiler")


def _case(n: int, k: int, rows: int, dtype: torch.dtype, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    # Rows of very different magnitudes: the per-row scales must follow each row.
    weight = torch.randn(n, k, generator=gen) * torch.logspace(-3, 1, n).unsqueeze(1)
    w_int8, scales = quantize_int8(weight)
    x = (torch.randn(rows, k, generator=gen) * torch.logspace(-1, 1, k)).to(dtype)
    return x, w_int8, scales


def _exact(x, w_int8, scales):
    """(M, N) float64 product, and the float64 product of the absolute values (for error scales)."""
    w = dequantize_int8(w_int8, scales, torch.float64)
    return x.double() @ w.t(), x.double().abs() @ w.abs().t()


def _fixed_point_bound(x, w_int8, scales):
    # bf16 x by VNNI: each row of x is rounded to 16-bit fixed point, off by <= max|x[m]| / 65534
    # per element (the bound stated in chip/native/int8_gemv.c).
    step = x.double().abs().amax(dim=1, keepdim=True) / 65534
    return step * (w_int8.double().abs().sum(dim=1) * scales.double())


def _run(x, w_int8, scales, threads: int, variant: int = 0):
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return native.int8_gemv(x, w_int8, scales, variant)
    finally:
        torch.set_num_threads(previous)


SHAPES = [(1, 1), (3, 17), (97, 31), (33, 64), (781, 1823), (64, 576), (40, 9000)]  # N x K


@requires_f32
@pytest.mark.parametrize("n, k", SHAPES)
@pytest.mark.parametrize("rows", [1, 2, 3, 5, 8])
def test_float32_matches_the_dequantized_product(n, k, rows):
    x, w_int8, scales = _case(n, k, rows, torch.float32, seed=n + rows)
    got = _run(x, w_int8, scales, threads=2)
    exact, magnitude = _exact(x, w_int8, scales)
    assert got.dtype == torch.float32 and got.shape == (rows, n)
    # fp32 products and sums: a few fp32 ulps of the absolute-value product.
    assert bool(((got.double() - exact).abs() <= magnitude * 2**-18).all())
    assert torch.equal(got, _run(x, w_int8, scales, threads=1))


@requires_bf16
@pytest.mark.parametrize("n, k", SHAPES + [(5, 16500)])  # K over one int32 accumulation chunk
@pytest.mark.parametrize("rows", [1, 2, 4, 6, 7, 8])
def test_bfloat16_by_vnni_within_its_fixed_point_bound(n, k, rows):
    x, w_int8, scales = _case(n, k, rows, torch.bfloat16, seed=n + rows)
    got = _run(x, w_int8, scales, threads=2)
    exact, magnitude = _exact(x, w_int8, scales)
    assert got.dtype == torch.bfloat16 and got.shape == (rows, n)
    # The fixed-point bound, then one bf16 rounding of the output (2^-9 relative, 2^-8 kept).
    bound = _fixed_point_bound(x, w_int8, scales) * 1.001 + exact.abs() * 2**-8 + magnitude * 2**-20
    assert bool(((got.double() - exact).abs() <= bound).all())
    # ...and far inside the bf16 test of the old path (a few ulps of the absolute-value product).
    assert bool(((got.double() - exact).abs() <= magnitude * 2**-8).all())
    assert torch.equal(got, _run(x, w_int8, scales, threads=1))


@requires_bf16
@pytest.mark.parametrize("n, k", [(3, 17), (97, 31), (781, 1823), (40, 9000)])
@pytest.mark.parametrize("rows", [1, 3, 8])
def test_bfloat16_by_dpbf16_rounds_only_the_output(n, k, rows):
    x, w_int8, scales = _case(n, k, rows, torch.bfloat16, seed=n * rows)
    got = _run(x, w_int8, scales, threads=2, variant=1)
    exact, magnitude = _exact(x, w_int8, scales)
    # Exact bf16 products, fp32 sums, one bf16 rounding.
    assert bool(((got.double() - exact).abs() <= exact.abs() * 2**-8 + magnitude * 2**-18).all())


@requires_bf16
def test_peaked_row_keeps_the_fixed_point_bound():
    # One element 10^4 times the others: the small ones lose bits, within the stated bound.
    x, w_int8, scales = _case(64, 576, 2, torch.bfloat16)
    x[0, 100] = 3e4
    got = _run(x, w_int8, scales, threads=1)
    exact, _ = _exact(x, w_int8, scales)
    bound = _fixed_point_bound(x, w_int8, scales) * 1.001 + exact.abs() * 2**-8
    assert bool(((got.double() - exact).abs() <= bound).all())


@requires_bf16
def test_largest_sums_do_not_overflow():
    w_int8 = torch.full((4, 16500), 127, dtype=torch.int8)
    x = torch.full((2, 16500), 3.0).bfloat16()
    got = _run(x, w_int8, torch.ones(4), threads=1)
    torch.testing.assert_close(got.double(), torch.full((2, 4), 127 * 3.0 * 16500, dtype=torch.float64),
                               rtol=2**-8, atol=0)


@requires_bf16
def test_non_finite_x_goes_to_the_reference():
    x, w_int8, scales = _case(33, 64, 2, torch.bfloat16)
    x[1, 3] = float("inf")
    assert native.int8_gemv(x, w_int8, scales) is None
    got, want = int8_matmul_cpu(x, w_int8, scales), int8_matmul(x, w_int8, scales)
    assert torch.equal(got.isnan(), want.isnan()) and torch.equal(got.isinf(), want.isinf())


@requires_bf16
def test_op_takes_the_kernel_up_to_its_row_limit_with_any_leading_shape():
    x, w_int8, scales = _case(97, 31, 6, torch.bfloat16)
    assert native.supports(x.view(2, 3, 31), w_int8, scales)
    got = int8_matmul_cpu(x.view(2, 3, 31), w_int8, scales)
    assert got.shape == (2, 3, 97) and torch.equal(got.view(6, 97), native.int8_gemv(x, w_int8, scales))
    too_many = torch.randn(native.MAX_ROWS + 1, 31).bfloat16()
    assert not native.supports(too_many, w_int8, scales)
    assert not native.supports(x, w_int8.t().contiguous().t(), scales)  # not row-major
    assert not native.supports(x, w_int8, scales.double())
    assert not native.supports(x.half(), w_int8, scales)


@requires_bf16
def test_concurrent_callers_and_a_forked_child_get_the_same_results():
    x, w_int8, scales = _case(781, 576, 4, torch.bfloat16)
    want = _run(x, w_int8, scales, threads=2)  # starts the pool
    results, previous = [], torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        def call():
            results.extend(native.int8_gemv(x, w_int8, scales) for _ in range(30))
        threads = [threading.Thread(target=call) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        pid = os.fork()
        if pid == 0:  # the child has no pool threads: the kernel must start its own, not hang
            signal.alarm(60)
            os._exit(0 if torch.equal(native.int8_gemv(x, w_int8, scales), want) else 1)
        _, status = os.waitpid(pid, 0)
    finally:
        torch.set_num_threads(previous)
    assert len(results) == 90 and all(torch.equal(r, want) for r in results)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
