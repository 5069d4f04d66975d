"""The CPU fast paths of paged attention and KV-cache stores against the torch references."""
import pytest
import torch

from chip.ops.attention import paged_attention, paged_attention_cpu
from chip.ops.kv_cache import store_kv_cache, store_kv_cache_cpu
from tests.chip.paged_cases import paged_case


@pytest.mark.parametrize("dtype, atol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
@pytest.mark.parametrize("q_lens, ctx_lens", [
    ([1] * 7, [1, 5, 17, 33, 2, 64, 9]),  # pure decode, ragged contexts
    ([1, 13, 1, 40, 1], [9, 13, 30, 71, 1]),  # mixed: decodes, a whole prompt, a later chunk
    ([23], [23]),  # one prompt
])
def test_cpu_paged_attention_matches_reference(dtype, atol, q_lens, ctx_lens):
    args = paged_case(dtype, q_lens, ctx_lens)
    expected = paged_attention(*args, scale=0.17)
    actual = paged_attention_cpu(*args, scale=0.17)
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    torch.testing.assert_close(actual.float(), expected.float(), atol=atol, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_cpu_store_kv_cache_matches_reference(dtype):
    gen = torch.Generator().manual_seed(1)
    caches = [torch.zeros(20, 4, 3, 8, dtype=dtype) for _ in range(4)]
    k, v = torch.randn(37, 3, 8, generator=gen), torch.randn(37, 3, 8, generator=gen)
    slots = torch.randperm(80, generator=gen)[:37]
    store_kv_cache(k, v, caches[0], caches[1], slots)
    store_kv_cache_cpu(k, v, caches[2], caches[3], slots)
    assert torch.equal(caches[0], caches[2]) and torch.equal(caches[1], caches[3])


@pytest.fixture
def torch_decode_path(monkeypatch):
    """The torch gather path, not the C kernel (tests/chip/test_paged_attention_native.py)."""
    from chip.ops import paged_attention_native

    monkeypatch.setattr(paged_attention_native, "supports", lambda q, k_cache: False)


@pytest.mark.parametrize("dtype, atol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
def test_torch_path_matches_reference(torch_decode_path, dtype, atol):
    args = paged_case(dtype, [1, 13, 1, 40, 1], [9, 13, 30, 71, 1])
    torch.testing.assert_close(paged_attention_cpu(*args, scale=0.17).float(),
                               paged_attention(*args, scale=0.17).float(), atol=atol, rtol=0)


def test_cpu_decode_in_cache_sized_chunks_matches_reference(torch_decode_path, monkeypatch):
    import chip.ops.attention as attention

    monkeypatch.setattr(attention, "_DECODE_CHUNK_BYTES", 4096)  # a few sequences per chunk
    args = paged_case(torch.float32, [1] * 11, [3, 40, 17, 8, 1, 29, 64, 5, 12, 33, 2])
    torch.testing.assert_close(paged_attention_cpu(*args, scale=0.3), paged_attention(*args, scale=0.3),
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize("chunk_bytes", [1, 3000, 20000])
def test_cpu_mixed_step_with_length_sorted_decode_chunks_matches_reference(torch_decode_path, monkeypatch,
                                                                          chunk_bytes):
    import chip.ops.attention as attention

    # Decode rows are regrouped by context length into chunks and scattered back: rows must land in
    # place even when prefill rows sit between them and each chunk holds one to many sequences.
    monkeypatch.setattr(attention, "_DECODE_CHUNK_BYTES", chunk_bytes)
    q_lens = [1, 1, 7, 1, 1, 1, 20, 1, 1]
    ctx_lens = [50, 3, 7, 31, 31, 8, 45, 1, 64]
    args = paged_case(torch.bfloat16, q_lens, ctx_lens, seed=4)
    torch.testing.assert_close(paged_attention_cpu(*args, scale=0.2).float(),
                               paged_attention(*args, scale=0.2).float(), atol=2e-2, rtol=0)
