"""Weight-only int8: quantization error bounds, the reference matmul, and the CPU packed path."""
from __future__ import annotations

import pytest
import torch

from chip import dispatch
from chip.ops.int8_matmul import dequantize_int8, int8_matmul, int8_matmul_cpu, quantize_int8


def _weight(n: int, k: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    # Rows of very different magnitudes: per-channel scales must follow each row.
    return torch.randn(n, k, generator=gen) * torch.logspace(-3, 1, n).unsqueeze(1)


def test_quantize_error_is_at_most_half_a_step_per_row():
    weight = _weight(781, 183)
    w_int8, scales = quantize_int8(weight)
    assert w_int8.dtype == torch.int8 and scales.shape == (781,)
    assert int(w_int8.abs().max()) <= 127
    assert torch.equal(w_int8.abs().amax(dim=1), torch.full((781,), 127, dtype=torch.int8))
    error = (dequantize_int8(w_int8, scales, torch.float32) - weight).abs()
    assert bool((error <= scales.unsqueeze(1) / 2 * (1 + 1e-5)).all())


def test_zero_rows_quantize_exactly():
    weight = _weight(4, 16)
    weight[2] = 0
    w_int8, scales = quantize_int8(weight)
    assert scales[2] == 1.0 and not w_int8[2].any()


def test_reference_matmul_error_within_the_quantization_bound():
    weight = _weight(257, 1823)
    x = torch.randn(5, 3, 1823, generator=torch.Generator().manual_seed(1))
    w_int8, scales = quantize_int8(weight)
    got = int8_matmul(x, w_int8, scales)
    assert got.shape == (5, 3, 257) and got.dtype == torch.float32
    exact = x.double() @ weight.double().t()
    # Each weight is off by <= scales[n] / 2, so each output by <= sum_k |x_k| * scales[n] / 2.
    bound = x.double().abs().sum(-1, keepdim=True) * scales.double() / 2
    assert bool(((got.double() - exact).abs() <= bound * 1.001 + 1e-4).all())
    # ...and it is the dequantized weights' product up to float32 rounding over K terms (against
    # float64: a float32 product of its own would add a second, BLAS-dependent rounding).
    dequantized = x.double() @ dequantize_int8(w_int8, scales, torch.float64).t()
    torch.testing.assert_close(got.double(), dequantized, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("rows", [1, 7, 64])
def test_cpu_packed_path_matches_dequantized_matmul_in_bf16(rows):
    weight = _weight(781, 1856)  # K a multiple of 64, N odd
    w_int8, scales = quantize_int8(weight)
    x = torch.randn(rows, 1856, generator=torch.Generator().manual_seed(rows)).bfloat16()
    got = int8_matmul_cpu(x, w_int8, scales)
    assert got.dtype == torch.bfloat16 and got.shape == (rows, 781)
    exact = x.double() @ dequantize_int8(w_int8, scales, torch.float64).t()
    # bf16 inputs and outputs: a few bf16 ulps (2^-8 relative) of the absolute-value product.
    scale = x.double().abs() @ dequantize_int8(w_int8, scales, torch.float64).abs().t()
    assert bool(((got.double() - exact).abs() <= scale * 2**-6 + 1e-6).all())


@pytest.mark.parametrize("dtype,k,rows", [(torch.float32, 128, 9), (torch.bfloat16, 72, 9),
                                          (torch.bfloat16, 128, 65)])
def test_cpu_path_falls_back_to_the_reference_outside_its_range(dtype, k, rows):
    # Up to 8 rows go to the C kernel (tests/chip/test_int8_gemv_native.py); beyond, bf16 with K a
    # multiple of 64 up to 64 rows to torch's packed kernel; the rest to the reference.
    w_int8, scales = quantize_int8(_weight(33, k))
    x = torch.randn(rows, k).to(dtype)
    assert torch.equal(int8_matmul_cpu(x, w_int8, scales), int8_matmul(x, w_int8, scales))


def test_bad_inputs_raise_value_error():
    w_int8, scales = quantize_int8(_weight(8, 16))
    with pytest.raises(ValueError, match="shapes"):
        int8_matmul(torch.randn(2, 15), w_int8, scales)
    with pytest.raises(ValueError, match="2-D float"):
        quantize_int8(torch.ones(3, dtype=torch.int32))
    assert dispatch("int8_matmul", "cpu") is int8_matmul_cpu
