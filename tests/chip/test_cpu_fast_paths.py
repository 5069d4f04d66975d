"""CPU fast paths are registered for the CPU and compute exactly what the references compute."""
from __future__ import annotations

import pytest
import torch

from chip import dispatch
from chip.ops.activation import silu_and_mul, silu_and_mul_cpu
from chip.ops.norm import rms_norm, rms_norm_cpu


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("shape", [(1823, 781), (1, 7), (3, 5, 64)])
@pytest.mark.parametrize("with_residual", [False, True])
def test_rms_norm_cpu_is_bit_identical_to_reference(dtype, shape, with_residual):
    gen = torch.Generator().manual_seed(shape[0])
    x = torch.randn(shape, generator=gen).to(dtype)
    weight = torch.randn(shape[-1], generator=gen).to(dtype)
    residual = torch.randn(shape, generator=gen).to(dtype) if with_residual else None
    x_before = x.clone()
    got = rms_norm_cpu(x, weight, 1e-5, residual)
    want = rms_norm(x, weight, 1e-5, residual)
    if with_residual:
        assert torch.equal(got[1], want[1])
        got, want = got[0], want[0]
    assert got.dtype == dtype and torch.equal(got, want)
    assert torch.equal(x, x_before), "the input must not be written"


def test_rms_norm_cpu_accepts_strided_rows():
    x = torch.randn(40, 100)[:, :64]
    weight = torch.randn(64)
    assert torch.equal(rms_norm_cpu(x, weight, 1e-6), rms_norm(x, weight, 1e-6))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(1823, 2 * 781), (2, 3, 10), (1, 2)])
def test_silu_and_mul_cpu_is_bit_identical_to_reference(dtype, shape):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    x_before = x.clone()
    assert torch.equal(silu_and_mul_cpu(x), silu_and_mul(x))
    assert torch.equal(x, x_before), "the input must not be written"


@pytest.mark.parametrize("op,fast", [("rms_norm", rms_norm_cpu), ("silu_and_mul", silu_and_mul_cpu)])
def test_cpu_dispatch_picks_the_fast_path(op, fast):
    assert dispatch(op, "cpu") is fast


@pytest.mark.parametrize("with_residual", [False, True])
def test_fast_paths_train_like_the_references(with_residual):
    # The trainer runs the same layers under autograd: gradients must flow and match.
    gen = torch.Generator().manual_seed(7)
    x0, r0 = torch.randn(6, 32, generator=gen), torch.randn(6, 32, generator=gen)
    w0 = torch.randn(32, generator=gen)
    grads = []
    for norm_fn, act_fn in ((rms_norm, silu_and_mul), (rms_norm_cpu, silu_and_mul_cpu)):
        x, w, r = (t.clone().requires_grad_() for t in (x0, w0, r0))
        out = norm_fn(x, w, 1e-6, r if with_residual else None)
        y = out[0] if with_residual else out
        act_fn(y).square().sum().backward()
        grads.append((x.grad, w.grad, r.grad))
    for want, got in zip(*grads):
        assert (want is None) == (got is None)
        if want is not None:
            torch.testing.assert_close(got, want, rtol=0, atol=0)
