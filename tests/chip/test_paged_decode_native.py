"""The C decode-attention kernel (chip/native/paged_decode.c) against the torch reference."""
import subprocess
import sys

import pytest
import torch

from chip.native import build
from chip.ops import paged_decode_native
from chip.ops.attention import paged_attention


def _decode_case(dtype, ctx_lens, num_kv_heads, group, head_dim, block_size, seed=0):
    gen = torch.Generator().manual_seed(seed)
    num_blocks = sum(-(-c // block_size) for c in ctx_lens) + 7
    shape = (num_blocks, block_size, num_kv_heads, head_dim)
    k_cache = torch.randn(*shape, generator=gen).to(dtype)
    v_cache = torch.randn(*shape, generator=gen).to(dtype)
    order = torch.randperm(num_blocks, generator=gen)  # scattered blocks, as after churn
    width = max(-(-c // block_size) for c in ctx_lens) + 3
    tables, used = torch.zeros(len(ctx_lens), width, dtype=torch.int32), 0
    for i, ctx in enumerate(ctx_lens):
        n = -(-ctx // block_size)
        tables[i, :n] = order[used:used + n]
        used += n
    q = torch.randn(len(ctx_lens), num_kv_heads * group, head_dim, generator=gen).to(dtype) * 3
    return q, k_cache, v_cache, tables, torch.tensor(ctx_lens, dtype=torch.int32)


def _reference(q, k_cache, v_cache, tables, lens, scale):
    cu = torch.arange(q.shape[0] + 1, dtype=torch.int32)  # one query row per sequence
    return paged_attention(q.float(), k_cache.float(), v_cache.float(), tables, cu, lens, scale)


requires_kernel = pytest.mark.skipif(build.load("paged_decode") is None, reason="no C compiler")


@requires_kernel
@pytest.mark.parametrize("dtype, atol", [(torch.float32, 1e-5), (torch.bfloat16, 1.6e-2)])
@pytest.mark.parametrize("num_kv_heads, group, head_dim, block_size", [
    (3, 3, 64, 16),  # SmolLM2-135M: the AVX-512 bf16 path where the CPU has it
    (2, 4, 32, 8),
    (4, 1, 48, 16),  # no GQA; head_dim not a multiple of 32: the portable path
    (1, 8, 128, 32),
])
@pytest.mark.parametrize("threads", [1, 2])
def test_native_decode_matches_reference(dtype, atol, num_kv_heads, group, head_dim, block_size, threads):
    # Contexts of 1 token, exact block multiples and ragged tails, long enough for many softmax
    # rescales across blocks.
    ctx_lens = [1, block_size, block_size + 1, 3 * block_size - 1, 300, 37, 2, 129]
    q, k_cache, v_cache, tables, lens = _decode_case(dtype, ctx_lens, num_kv_heads, group, head_dim,
                                                     block_size)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        actual = paged_decode_native.paged_decode(q, k_cache, v_cache, tables, lens, scale=0.11)
    finally:
        torch.set_num_threads(previous)
    assert actual.dtype == dtype and actual.shape == q.shape
    expected = _reference(q, k_cache, v_cache, tables, lens, scale=0.11)
    torch.testing.assert_close(actual.float(), expected, atol=atol, rtol=0)


@requires_kernel
def test_native_decode_ignores_other_sequences_blocks():
    # Poisoning every block a sequence does not own (and its own slots past its length) must not
    # change its output: the kernel reads exactly its table's first ceil(len / block_size) blocks.
    q, k_cache, v_cache, tables, lens = _decode_case(torch.bfloat16, [5, 20], 2, 2, 64, 16)
    clean = paged_decode_native.paged_decode(q[:1], k_cache, v_cache, tables[:1], lens[:1], 0.2)
    own = set(tables[0, :1].tolist())
    for block in range(k_cache.shape[0]):
        if block not in own:
            k_cache[block], v_cache[block] = 1e4, float("nan")
    k_cache[tables[0, 0], 5:], v_cache[tables[0, 0], 5:] = 1e4, float("nan")
    poisoned = paged_decode_native.paged_decode(q[:1], k_cache, v_cache, tables[:1], lens[:1], 0.2)
    assert torch.equal(clean, poisoned)


def test_supports_only_cpu_bf16_and_fp32_contiguous_caches():
    q = torch.zeros(2, 4, 64, dtype=torch.float16)
    assert not paged_decode_native.supports(q, torch.zeros(3, 16, 2, 64, dtype=torch.float16))
    cache = torch.zeros(3, 16, 2, 64, dtype=torch.bfloat16)
    assert not paged_decode_native.supports(q.bfloat16(), cache.transpose(1, 2))
    assert paged_decode_native.supports(q.bfloat16(), cache) == (build.load("paged_decode") is not None)


def test_build_falls_back_when_disabled_or_the_compiler_fails(tmp_path):
    # A fresh process: `build.load` caches per process. No library -> the torch path answers.
    script = (
        "import torch\n"
        "from chip.native import build\n"
        "from chip.ops.attention import paged_attention_cpu\n"
        "assert build.load('paged_decode') is None\n"
        "q = torch.randn(2, 4, 16); cache = torch.randn(4, 4, 2, 16)\n"
        "out = paged_attention_cpu(q, cache, cache, torch.tensor([[0, 1], [2, 3]]),\n"
        "                          torch.tensor([0, 1, 2]), torch.tensor([5, 8]), 0.25)\n"
        "assert out.shape == q.shape and torch.isfinite(out).all()\n"
    )
    for env in ({"FLYWHEEL_NATIVE": "0"}, {"CC": str(tmp_path / "missing-cc")},
                {"CC": "false"}):
        run_env = {"PATH": "/usr/bin:/bin", "FLYWHEEL_CACHE_DIR": str(tmp_path / "cache"), **env}
        if env.get("CC") != "false":
            run_env["PATH"] = str(tmp_path)  # no cc, no gcc on PATH either
        result = subprocess.run([sys.executable, "-c", script], env=run_env, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, (env, result.stderr[-2000:])
