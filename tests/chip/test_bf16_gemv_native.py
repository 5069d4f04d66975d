"""The bf16-weight GEMV (chip/native/int8_gemv.c `bf16_gemv`) against F.linear in float64, on ragged
shapes, 1-8 rows, with and without bias, 1 and 2 threads; and chip's `linear` op routing to it."""
import pytest
import torch
import torch.nn.functional as F

from chip.ops import bf16_gemv_native as native
from chip.ops.linear import linear_cpu

requires_kernel = pytest.mark.skipif(not native._cpu_supported(), reason="no AVX512_BF16 or no C compiler")

SHAPES = [(1, 1), (3, 17), (97, 31), (33, 64), (781, 1823), (64, 576), (40, 9000), (129, 95)]  # N x K


def _case(n: int, k: int, rows: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    weight = (torch.randn(n, k, generator=gen) * torch.logspace(-3, 1, n).unsqueeze(1)).bfloat16()
    x = (torch.randn(rows, k, generator=gen) * torch.logspace(-1, 1, k)).bfloat16()
    bias = torch.randn(n, generator=gen).bfloat16()
    return x, weight, bias


def _run(x, weight, bias, threads: int):
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return native.bf16_gemv(x, weight, bias)
    finally:
        torch.set_num_threads(previous)


@requires_kernel
@pytest.mark.parametrize("n, k", SHAPES)
@pytest.mark.parametrize("rows", [1, 2, 3, 4, 5, 7, 8])
@pytest.mark.parametrize("with_bias", [False, True])
def test_matches_float64_linear_within_one_bf16_rounding(n, k, rows, with_bias):
    x, weight, bias = _case(n, k, rows, seed=n * 7 + k + rows)
    bias = bias if with_bias else None
    got = _run(x, weight, bias, threads=2)
    assert got.dtype == torch.bfloat16 and got.shape == (rows, n)
    # bf16 inputs are exact in float64, so this is the exact result.
    exact = F.linear(x.double(), weight.double(), None if bias is None else bias.double())
    magnitude = x.double().abs() @ weight.double().abs().t() + (0 if bias is None else bias.double().abs())
    # One rounding to bf16 (2^-9 relative) plus fp32 sums of K products (K * 2^-24 of the magnitude).
    bound = exact.abs() * 2.0 ** -8 + magnitude * (k + 1) * 2.0 ** -23 + 1e-30
    assert ((got.double() - exact).abs() <= bound).all()
    # Not vacuous: a wrong row or a dropped tail of K would be far outside.
    assert (bound < 0.05 * magnitude + 1e-20).all()


@requires_kernel
@pytest.mark.parametrize("rows", [1, 3, 8])
def test_one_and_two_threads_are_bit_identical(rows):
    x, weight, bias = _case(1541, 577, rows, seed=rows)
    assert torch.equal(_run(x, weight, bias, threads=1).view(torch.int16),
                       _run(x, weight, bias, threads=2).view(torch.int16))


@requires_kernel
def test_writes_into_a_strided_slice_only():
    x, weight, bias = _case(50, 70, 3, seed=1)
    out = torch.full((3, 120), 7.0, dtype=torch.bfloat16)
    native.bf16_gemv(x, weight, bias, out[:, 40:90])
    assert torch.equal(out[:, 40:90], _run(x, weight, bias, threads=1))
    assert (out[:, :40] == 7).all() and (out[:, 90:] == 7).all()


@requires_kernel
def test_linear_op_routes_decode_rows_to_the_kernel(monkeypatch):
    x, weight, bias = _case(64, 96, 2, seed=3)
    calls = []
    kernel = native.bf16_gemv
    monkeypatch.setattr(native, "bf16_gemv", lambda *a: calls.append(1) or kernel(*a))
    with torch.no_grad():
        assert torch.equal(linear_cpu(x, weight, bias), kernel(x, weight, bias))
        linear_cpu(torch.randn(9, 96).bfloat16(), weight, bias)  # 9 rows: oneDNN / F.linear
        linear_cpu(x.float(), weight.float(), bias.float())  # float32: F.linear
    assert len(calls) == 1
    monkeypatch.setattr(native, "ENABLED", False)
    with torch.no_grad():
        linear_cpu(x, weight, bias)
    assert len(calls) == 1
    # Autograd keeps F.linear.
    w = weight.clone().requires_grad_()
    linear_cpu(x, w, bias).float().sum().backward()
    assert len(calls) == 1 and w.grad is not None
