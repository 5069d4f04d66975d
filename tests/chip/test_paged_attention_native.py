"""The C paged-attention kernel (chip/native/paged_attention.c) against the torch reference."""
import subprocess
import sys

import pytest
import torch

from chip.native import build
from chip.ops import paged_attention_native as native
from chip.ops.attention import paged_attention
from tests.chip.paged_cases import paged_case


def _case(dtype, ctx_lens, num_kv_heads, group, head_dim, block_size, q_lens=None, seed=0):
    q_lens = q_lens or [1] * len(ctx_lens)  # decode: one query row per sequence
    return paged_case(dtype, q_lens, ctx_lens, block_size, num_kv_heads, group, head_dim, seed,
                      q_scale=3.0)  # peakier softmax than unit-variance queries give


def _reference(q, k_cache, v_cache, tables, cu, lens, scale):
    return paged_attention(q.float(), k_cache.float(), v_cache.float(), tables, cu, lens, scale)


requires_kernel = pytest.mark.skipif(build.load("paged_attention") is None, reason="no C compiler")


@requires_kernel
@pytest.mark.parametrize("dtype, atol", [(torch.float32, 1e-5), (torch.bfloat16, 1.6e-2)])
@pytest.mark.parametrize("num_kv_heads, group, head_dim, block_size", [
    (3, 3, 64, 16),  # SmolLM2-135M: the AVX-512 bf16 path where the CPU has it
    (2, 4, 32, 8),
    (4, 1, 48, 16),  # no GQA; head_dim not a multiple of 32: the portable path
    (1, 8, 128, 32),
    # Decode by GQA group (AVX-512 BF16): group sizes 1-4 with constant shapes, else the
    # runtime-shaped body (head_dim 96, group 5); blocks of 16/32/64.
    (2, 1, 64, 64),
    (3, 2, 128, 16),
    (2, 5, 96, 32),
])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("step", ["decode", "mixed"])
def test_native_attention_matches_reference(dtype, atol, num_kv_heads, group, head_dim, block_size,
                                            threads, step):
    # Contexts of 1 token, exact block multiples and ragged tails, long enough for many softmax
    # rescales across blocks. "mixed": decode rows beside whole prompts and later prefill chunks
    # (causal inside the chunk), as the scheduler builds a step.
    ctx_lens = [1, block_size, block_size + 1, 3 * block_size - 1, 300, 37, 2, 129]
    q_lens = None if step == "decode" else [1, block_size, 1, 5, 40, 37, 1, 64]
    args = _case(dtype, ctx_lens, num_kv_heads, group, head_dim, block_size, q_lens)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        actual = native.paged_attention(*args, scale=0.11)
    finally:
        torch.set_num_threads(previous)
    assert actual.dtype == dtype and actual.shape == args[0].shape
    torch.testing.assert_close(actual.float(), _reference(*args, scale=0.11), atol=atol, rtol=0)


@requires_kernel
def test_native_attention_reads_only_what_each_row_may_see():
    # Poisoning every block a sequence does not own (and its own slots past its length) must not
    # change its output: the kernel reads exactly its table's first ceil(len / block_size) blocks.
    q, k_cache, v_cache, tables, cu, lens = _case(torch.bfloat16, [5, 20], 2, 2, 64, 16)
    one = torch.tensor([0, 1])
    clean = native.paged_attention(q[:1], k_cache, v_cache, tables[:1], one, lens[:1], 0.2)
    own = set(tables[0, :1].tolist())
    for block in range(k_cache.shape[0]):
        if block not in own:
            k_cache[block], v_cache[block] = 1e4, float("nan")
    k_cache[tables[0, 0], 5:], v_cache[tables[0, 0], 5:] = 1e4, float("nan")
    poisoned = native.paged_attention(q[:1], k_cache, v_cache, tables[:1], one, lens[:1], 0.2)
    assert torch.equal(clean, poisoned)


@requires_kernel
def test_native_prefill_rows_are_causal():
    # Row j of a 12-token prompt must not see tokens after j: changing the last token's key and
    # value changes only the last row's output.
    q, k_cache, v_cache, tables, cu, lens = _case(torch.bfloat16, [12], 3, 3, 64, 16, q_lens=[12])
    before = native.paged_attention(q, k_cache, v_cache, tables, cu, lens, 0.2)
    k_cache[tables[0, 0], 11], v_cache[tables[0, 0], 11] = 7.0, -7.0
    after = native.paged_attention(q, k_cache, v_cache, tables, cu, lens, 0.2)
    assert torch.equal(before[:11], after[:11]) and not torch.equal(before[11], after[11])


def test_supports_only_cpu_bf16_and_fp32_contiguous_caches():
    q = torch.zeros(2, 4, 64, dtype=torch.float16)
    assert not native.supports(q, torch.zeros(3, 16, 2, 64, dtype=torch.float16))
    cache = torch.zeros(3, 16, 2, 64, dtype=torch.bfloat16)
    assert not native.supports(q.bfloat16(), cache.transpose(1, 2))
    assert native.supports(q.bfloat16(), cache) == (build.load("paged_attention") is not None)
    huge_blocks = torch.zeros(3, native.MAX_BLOCK_SIZE * 2, 2, 64, dtype=torch.bfloat16)
    assert not native.supports(q.bfloat16(), huge_blocks)  # the torch path takes it instead


def test_build_falls_back_when_disabled_or_the_compiler_fails(tmp_path):
    # A fresh process: `build.load` caches per process. No library -> the torch path answers.
    script = (
        "import torch\n"
        "from chip.native import build\n"
        "from chip.ops.attention import paged_attention_cpu\n"
        "assert build.load('paged_attention') is None\n"
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


# Prefill tiles (runs of >= 4 rows of one sequence, up to 64 // group rows per tile, per kv head)
# in bf16 with AVX-512; the portable row kernel elsewhere and in fp32. Query lengths straddle the
# tile sizes (3 rows: the row kernel; 4; one row past a full tile; several tiles), chunks start at
# a block boundary, mid-block and mid-sequence, beside decode rows, all in one call.
@requires_kernel
@pytest.mark.parametrize("dtype, atol", [(torch.float32, 1e-5), (torch.bfloat16, 1.6e-2)])
@pytest.mark.parametrize("num_kv_heads, group, head_dim, block_size", [
    (3, 3, 64, 16),  # SmolLM2-135M: tiles of 21 rows
    (2, 4, 128, 16),  # tiles of 16 rows, head_dim 128 (two 64-dim passes of P V)
    (1, 16, 64, 32),  # tiles of the minimum 4 rows
    (4, 1, 64, 16),  # no GQA: tiles of 64 rows
    (2, 2, 96, 16),  # head_dim 96: a 64-dim and a 32-dim pass of P V
    (2, 3, 64, 64),  # blocks of 64 tokens: two AMX products of P V per block
    (1, 32, 32, 16),  # a group too wide for a tile: every row by the row kernel
])
@pytest.mark.parametrize("threads", [1, 2])
def test_native_prefill_tiles_match_reference(dtype, atol, num_kv_heads, group, head_dim, block_size,
                                              threads):
    q_lens = [3, 4, 1, 22, 65, 2 * block_size, 17, 1, 130]
    ctx_lens = [3, 4 + 2 * block_size, 50, 22, 65 + block_size // 2, 3 * block_size, 17 + 5 * block_size,
                block_size, 130]
    args = _case(dtype, ctx_lens, num_kv_heads, group, head_dim, block_size, q_lens)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        actual = native.paged_attention(*args, scale=0.11)
    finally:
        torch.set_num_threads(previous)
    torch.testing.assert_close(actual.float(), _reference(*args, scale=0.11), atol=atol, rtol=0)


@requires_kernel
def test_native_prefill_tiles_read_only_what_each_row_may_see():
    # A 37-row chunk over 45 keys (a tile's last block is ragged): poisoning every other block and
    # the slots past the sequence's end must not change any row.
    q, k_cache, v_cache, tables, cu, lens = _case(torch.bfloat16, [45], 3, 3, 64, 16, q_lens=[37])
    clean = native.paged_attention(q, k_cache, v_cache, tables, cu, lens, 0.2)
    own = set(tables[0, :3].tolist())
    for block in range(k_cache.shape[0]):
        if block not in own:
            k_cache[block], v_cache[block] = float("nan"), float("nan")
    k_cache[tables[0, 2], 13:], v_cache[tables[0, 2], 13:] = float("nan"), float("nan")
    assert torch.equal(clean, native.paged_attention(q, k_cache, v_cache, tables, cu, lens, 0.2))


@requires_kernel
# 0 rows only; 1 tiles without AMX (the op's path elsewhere); 2 with decode rows by the row kernel
@pytest.mark.parametrize("tiled", [0, 1, 2])
@pytest.mark.parametrize("num_kv_heads, group, head_dim", [(3, 3, 64), (2, 4, 128)])
def test_native_variants_without_amx_match_reference(tiled, num_kv_heads, group, head_dim):
    import ctypes

    variant = build.function("paged_attention", "paged_attention_variant", (ctypes.c_int, *native._SIGNATURE))
    q_lens, ctx_lens = [4, 1, 22, 65, 37], [4, 50, 22, 73, 90]
    q, k_cache, v_cache, tables, cu, lens = _case(torch.bfloat16, ctx_lens, num_kv_heads, group, head_dim,
                                                  16, q_lens)
    tables, cu, lens = tables.long(), cu.long(), lens.long()
    out = torch.empty_like(q)
    assert variant(tiled, 0, q.data_ptr(), k_cache.data_ptr(), v_cache.data_ptr(), tables.data_ptr(),
                   tables.shape[1], cu.data_ptr(), lens.data_ptr(), out.data_ptr(), len(ctx_lens),
                   q.shape[1], num_kv_heads, head_dim, 16, 0.11, 1) == 0
    torch.testing.assert_close(out.float(), _reference(q, k_cache, v_cache, tables, cu, lens, scale=0.11),
                               atol=1.6e-2, rtol=0)
