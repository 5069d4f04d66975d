"""Triton kernels against the torch references on irregular shapes.

On CPU they run in the Triton interpreter (the `interpreted` fixture); the same checks run compiled
on a GPU when one is present (marked `gpu`). Tolerances: float32 results agree to 1e-5. For bfloat16
the interpreter rounds float32 -> bf16 by truncation where the GPU and torch round to nearest, so a
value rounded twice (rms_norm's residual sum, then its output) may differ from the reference by up
to three bf16 ulps: rtol = atol = 3 * 2^-7.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from chip.ops import activation, attention, kv_cache, norm, rotary
from tests.chip.conftest import requires_cuda, triton_imported_compiled

ROOT = Path(__file__).resolve().parents[2]

F32_TOL = dict(rtol=1e-5, atol=1e-5)
BF16_TOL = dict(rtol=3 * 2**-7, atol=3 * 2**-7)


def _tol(dtype: torch.dtype) -> dict:
    return F32_TOL if dtype == torch.float32 else BF16_TOL


def check_rms_norm(kernels, device, dtype, num_rows, hidden, with_residual):
    gen = torch.Generator().manual_seed(num_rows)
    # A strided view: rows of a wider buffer, as the hidden slice of a fused tensor would be.
    x = torch.randn(num_rows, hidden + 5, generator=gen)[:, :hidden].to(device, dtype)
    weight = torch.randn(hidden, generator=gen).to(device, dtype)
    residual = torch.randn(num_rows, hidden, generator=gen).to(device, dtype) if with_residual else None
    got = kernels.norm_triton.rms_norm_triton(x, weight, 1e-6, residual)
    want = norm.rms_norm(x, weight, 1e-6, residual)
    if with_residual:
        torch.testing.assert_close(got[1], want[1], **_tol(dtype))
        got, want = got[0], want[0]
    torch.testing.assert_close(got, want, **_tol(dtype))


def check_silu_and_mul(kernels, device, dtype, lead_shape, inter):
    x = torch.randn(*lead_shape, 2 * inter, generator=torch.Generator().manual_seed(inter)).to(device, dtype)
    got = kernels.activation_triton.silu_and_mul_triton(x, block_n=256)
    torch.testing.assert_close(got, activation.silu_and_mul(x), **_tol(dtype))


def check_rotary(kernels, device, dtype, num_tokens, num_q_heads, num_kv_heads, head_dim):
    gen = torch.Generator().manual_seed(num_tokens)
    cos_sin = rotary.rope_cos_sin(head_dim, 4096, 500000.0,
                                  {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                   "high_freq_factor": 4.0, "original_max_position_embeddings": 1024}
                                  ).to(device)
    # q and k as views of one fused qkv projection output, like the attention layer makes them.
    qkv = torch.randn(num_tokens, (num_q_heads + 2 * num_kv_heads) * head_dim, generator=gen)
    qkv = qkv.to(device, dtype)
    q = qkv[:, : num_q_heads * head_dim].view(num_tokens, num_q_heads, head_dim)
    k = qkv[:, num_q_heads * head_dim: (num_q_heads + num_kv_heads) * head_dim].view(
        num_tokens, num_kv_heads, head_dim)
    positions = torch.randint(0, 4096, (num_tokens,), generator=gen).to(device)
    got_q, got_k = kernels.rotary_triton.apply_rotary_triton(q, k, positions, cos_sin)
    want_q, want_k = rotary.apply_rotary(q, k, positions, cos_sin)
    torch.testing.assert_close(got_q, want_q, **_tol(dtype))
    torch.testing.assert_close(got_k, want_k, **_tol(dtype))


def check_store_kv_cache(kernels, device, dtype, num_tokens, num_kv_heads, head_dim, block_size):
    gen = torch.Generator().manual_seed(num_tokens)
    num_blocks = num_tokens // block_size + 3
    cache_shape = (num_blocks, block_size, num_kv_heads, head_dim)
    k = torch.randn(num_tokens, num_kv_heads, head_dim, generator=gen).to(device, torch.float32)
    v = torch.randn(num_tokens, num_kv_heads, head_dim, generator=gen).to(device, torch.float32)
    slots = torch.randperm(num_blocks * block_size, generator=gen)[:num_tokens].to(device)
    got_k = torch.zeros(cache_shape, dtype=dtype, device=device)
    got_v = torch.zeros(cache_shape, dtype=dtype, device=device)
    want_k, want_v = got_k.clone(), got_v.clone()
    kernels.kv_cache_triton.store_kv_cache_triton(k, v, got_k, got_v, slots)
    kv_cache.store_kv_cache(k, v, want_k, want_v, slots)
    torch.testing.assert_close(got_k, want_k, **_tol(dtype))
    torch.testing.assert_close(got_v, want_v, **_tol(dtype))


def check_paged_decode(kernels, device, dtype, context_lens, num_q_heads, num_kv_heads, head_dim,
                       block_size):
    gen = torch.Generator().manual_seed(sum(context_lens))
    num_seqs = len(context_lens)
    max_blocks = max(context_lens) // block_size + 1
    num_blocks = num_seqs * max_blocks + 2
    cache_shape = (num_blocks, block_size, num_kv_heads, head_dim)
    k_cache = torch.randn(cache_shape, generator=gen).to(device, dtype)
    v_cache = torch.randn(cache_shape, generator=gen).to(device, dtype)
    # Every sequence gets its own scattered physical blocks.
    block_tables = torch.randperm(num_blocks, generator=gen)[: num_seqs * max_blocks]
    block_tables = block_tables.view(num_seqs, max_blocks).to(device, torch.int32)
    lens = torch.tensor(context_lens, dtype=torch.int32, device=device)
    q = torch.randn(num_seqs, num_q_heads, head_dim, generator=gen).to(device, dtype)
    cu_seqlens_q = torch.arange(num_seqs + 1, dtype=torch.int32, device=device)
    scale = head_dim ** -0.5
    got = kernels.attention_triton.paged_attention_cuda(q, k_cache, v_cache, block_tables,
                                                        cu_seqlens_q, lens, scale)
    want = attention.paged_attention(q, k_cache, v_cache, block_tables, cu_seqlens_q, lens, scale)
    torch.testing.assert_close(got, want, **_tol(dtype))


def check_paged_varlen(kernels, device, dtype, query_lens, context_lens, num_q_heads, num_kv_heads,
                       head_dim, block_size):
    gen = torch.Generator().manual_seed(sum(query_lens))
    num_seqs = len(context_lens)
    max_blocks = max(context_lens) // block_size + 1
    num_blocks = num_seqs * max_blocks + 1
    cache_shape = (num_blocks, block_size, num_kv_heads, head_dim)
    k_cache = torch.randn(cache_shape, generator=gen).to(device, dtype)
    v_cache = torch.randn(cache_shape, generator=gen).to(device, dtype)
    block_tables = torch.randperm(num_blocks, generator=gen)[: num_seqs * max_blocks]
    block_tables = block_tables.view(num_seqs, max_blocks).to(device, torch.int32)
    cu_seqlens_q = torch.tensor([0, *torch.tensor(query_lens).cumsum(0).tolist()], dtype=torch.int32,
                                device=device)
    lens = torch.tensor(context_lens, dtype=torch.int32, device=device)
    q = torch.randn(sum(query_lens), num_q_heads, head_dim, generator=gen).to(device, dtype)
    scale = head_dim ** -0.5
    got = kernels.attention_triton.paged_attention_cuda(q, k_cache, v_cache, block_tables,
                                                        cu_seqlens_q, lens, scale)
    want = attention.paged_attention(q, k_cache, v_cache, block_tables, cu_seqlens_q, lens, scale)
    # tf32 products on a real GPU carry ~1e-3 relative error for 16-bit inputs.
    tol = _tol(dtype) if device == "cpu" or dtype == torch.float32 else dict(rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(got, want, **tol)


# ---- interpreter on CPU

@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("num_rows,hidden,with_residual", [(1823, 781, False), (97, 781, True),
                                                            (3, 64, True)])
def test_rms_norm_interpreted(interpreted, dtype, num_rows, hidden, with_residual):
    if num_rows > 1000 and dtype == torch.bfloat16:
        num_rows = 301  # the big float32 case already covers the row count; keep the suite fast
    check_rms_norm(interpreted, "cpu", dtype, num_rows, hidden, with_residual)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("lead_shape,inter", [((183,), 781), ((2, 5), 1000), ((1,), 3)])
def test_silu_and_mul_interpreted(interpreted, dtype, lead_shape, inter):
    check_silu_and_mul(interpreted, "cpu", dtype, lead_shape, inter)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(37, 7, 1, 66), (129, 9, 3, 64), (1, 1, 1, 2)])
def test_rotary_interpreted(interpreted, dtype, shape):
    check_rotary(interpreted, "cpu", dtype, *shape)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(53, 3, 66, 16), (200, 1, 64, 7)])
def test_store_kv_cache_interpreted(interpreted, dtype, shape):
    check_store_kv_cache(interpreted, "cpu", dtype, *shape)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("context_lens,heads,head_dim,block_size", [
    ([1, 16, 17, 75], (9, 3), 66, 16),  # GQA group 3, partial blocks, head dim not a power of 2
    ([5, 40], (5, 5), 64, 7),  # MHA, a block size that is not a power of 2
    ([33], (8, 1), 32, 8),  # MQA: one kv head for all query heads
])
def test_paged_decode_attention_interpreted(interpreted, dtype, context_lens, heads, head_dim,
                                            block_size):
    check_paged_decode(interpreted, "cpu", dtype, context_lens, *heads, head_dim, block_size)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("query_lens,context_lens,heads,head_dim,block_size", [
    # A mixed step: a decode row, a later prefill chunk, a whole prompt longer than one tile, a
    # one-token prompt; GQA group 3, head dim and block size not powers of two.
    ([1, 3, 37, 1], [40, 9, 37, 1], (6, 2), 40, 7),
    ([16, 5], [16, 70], (4, 4), 8, 16),  # stories260K's head dim (8), below tl.dot's 16
])
def test_paged_varlen_attention_interpreted(interpreted, dtype, query_lens, context_lens, heads,
                                            head_dim, block_size):
    check_paged_varlen(interpreted, "cpu", dtype, query_lens, context_lens, *heads, head_dim,
                       block_size)


def test_autograd_inputs_take_the_differentiable_reference(interpreted):
    # The kernels have no backward pass: training through the "cuda" backend must still get grads.
    x = torch.randn(5, 16, requires_grad=True)
    y, _ = interpreted.norm_triton.rms_norm_triton(x, torch.ones(16), 1e-6, torch.zeros(5, 16))
    interpreted.activation_triton.silu_and_mul_triton(y).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    q = torch.randn(3, 2, 8, requires_grad=True)
    rq, _ = interpreted.rotary_triton.apply_rotary_triton(q, q.detach(), torch.arange(3),
                                                           torch.randn(10, 8))
    rq.sum().backward()
    assert q.grad is not None


def test_empty_batches_launch_nothing(interpreted):
    x, weight = torch.empty(0, 64), torch.ones(64)
    assert interpreted.norm_triton.rms_norm_triton(x, weight, 1e-6).shape == (0, 64)
    y, residual = interpreted.norm_triton.rms_norm_triton(x, weight, 1e-6, x)
    assert y.shape == residual.shape == (0, 64)
    assert interpreted.activation_triton.silu_and_mul_triton(torch.empty(0, 8)).shape == (0, 4)
    q = torch.empty(0, 4, 8)
    assert interpreted.rotary_triton.apply_rotary_triton(q, q, torch.empty(0, dtype=torch.long),
                                                         torch.zeros(4, 8))[0].shape == (0, 4, 8)


def test_interpreted_kernels_register_as_cuda_backend(interpreted):
    from chip.dispatch import implementations

    assert implementations("rms_norm")["cuda"] is interpreted.norm_triton.rms_norm_triton
    assert implementations("paged_attention")["cuda"] is interpreted.attention_triton.paged_attention_cuda


def test_rotary_triton_rejects_mismatched_head_dim(interpreted):
    q, k = torch.randn(3, 2, 8), torch.randn(3, 2, 8)
    with pytest.raises(AssertionError, match="head dim"):
        interpreted.rotary_triton.apply_rotary_triton(q, k, torch.zeros(3, dtype=torch.long),
                                                      torch.zeros(10, 6))


def test_interpreted_kernels_in_a_fresh_process_if_triton_was_imported_compiled():
    # Runs last in this file: by then the interpreted tests above have either run or been skipped.
    if not triton_imported_compiled():
        pytest.skip("the interpreted tests ran in this process")
    env = dict(os.environ, TRITON_INTERPRET="1")
    files = [str(Path(__file__).relative_to(ROOT)), "tests/chip/test_triton_in_model.py"]
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "-m", "not gpu", *files],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and " failed" not in result.stdout


# ---- compiled on a real GPU

@pytest.mark.gpu
@requires_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_kernels_on_gpu(compiled, dtype):
    check_rms_norm(compiled, "cuda", dtype, 1823, 781, True)
    check_rms_norm(compiled, "cuda", dtype, 1823, 781, False)
    check_silu_and_mul(compiled, "cuda", dtype, (1823,), 781)
    check_rotary(compiled, "cuda", dtype, 1823, 9, 3, 66)
    check_store_kv_cache(compiled, "cuda", dtype, 1823, 3, 66, 16)
    check_paged_decode(compiled, "cuda", dtype, [1, 16, 17, 75, 1000, 333], 9, 3, 66, 16)
    check_paged_varlen(compiled, "cuda", dtype, [1, 3, 300, 1, 77], [40, 9, 300, 1, 1000], 9, 3, 66,
                       16)
