"""FLOP and byte accounting against independent counts, and MFU / MBU arithmetic."""
from __future__ import annotations

import pytest
import torch

from chip.utilization import (
    attended_keys,
    decoder_matmul_params,
    kv_cache_bytes,
    mbu,
    mfu,
    roofline_seconds,
    step_bytes,
    step_flops,
)
from shared import DeviceProfile

PROFILE = DeviceProfile(kind="cuda", name="test", compute_units=1, memory_bytes=80 * 1024**3,
                        memory_bandwidth=2.0e12, peak_flops={"float32": 50e12, "bfloat16": 1000e12})


def test_step_flops_matches_torch_flop_counter_on_a_transformers_llama():
    transformers = pytest.importorskip("transformers")
    from torch.utils.flop_counter import FlopCounterMode

    layers, heads, kv_heads, head_dim, num_tokens = 3, 6, 2, 16, 11
    config = transformers.LlamaConfig(vocab_size=301, hidden_size=heads * head_dim,
                                      intermediate_size=172, num_hidden_layers=layers,
                                      num_attention_heads=heads, num_key_value_heads=kv_heads,
                                      attn_implementation="eager")
    model = transformers.LlamaForCausalLM(config).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randint(0, 301, (1, num_tokens)))
    num_params = sum(p.numel() for name, p in model.named_parameters()
                     if p.dim() == 2 and "embed_tokens" not in name)
    assert num_params == decoder_matmul_params(heads * head_dim, 172, layers, heads, kv_heads,
                                               head_dim, 301)
    # Eager attention multiplies the full (T x T) score matrix, masked or not: T * T key visits.
    want = counter.get_total_flops()
    got = step_flops(num_params, num_tokens, attention_context_tokens=num_tokens * num_tokens,
                     num_layers=layers, num_heads=heads, head_dim=head_dim)
    assert got == want


@pytest.mark.parametrize("num_query_tokens,context_len", [(1, 1), (1, 57), (9, 9), (4, 30), (0, 5)])
def test_attended_keys_counts_the_causal_mask(num_query_tokens, context_len):
    # Brute force: query j (the last q of context_len) sees keys 0..its position.
    positions = torch.arange(context_len - num_query_tokens, context_len).unsqueeze(1)
    mask = torch.arange(context_len).unsqueeze(0) <= positions
    assert attended_keys(num_query_tokens, context_len) == int(mask.sum())


def test_kv_cache_bytes_equals_the_cache_tensors_size():
    layers, kv_heads, head_dim, block_size, num_blocks = 5, 3, 48, 16, 7
    cache = torch.empty(num_blocks, block_size, kv_heads, head_dim, dtype=torch.bfloat16)
    per_layer_k_and_v = 2 * cache.nbytes
    assert kv_cache_bytes(num_blocks * block_size, layers, kv_heads, head_dim, 2) == \
        layers * per_layer_k_and_v


def test_decode_step_mbu_and_mfu():
    # A 7B bf16 model decoding 8 sequences of 1000 tokens each in 10 ms.
    weight_bytes = 7e9 * 2
    kv_read = kv_cache_bytes(8 * 1000, 32, 8, 128, 2)
    kv_written = kv_cache_bytes(8, 32, 8, 128, 2)
    moved = step_bytes(int(weight_bytes), kv_read, kv_written)
    assert moved == weight_bytes + kv_read + kv_written
    assert mbu(moved, 0.010, PROFILE) == pytest.approx(moved / 0.010 / 2.0e12)
    flops = step_flops(7_000_000_000, 8, 8 * attended_keys(1, 1000), 32, 32, 128)
    assert flops == 2 * 7e9 * 8 + 4 * 32 * 32 * 128 * 8000
    assert mfu(flops, 0.010, PROFILE, "bfloat16") == pytest.approx(flops / 0.010 / 1000e12)
    # A dtype missing from the profile falls back to float32's peak.
    assert mfu(flops, 0.010, PROFILE, "float16") == pytest.approx(flops / 0.010 / 50e12)


def test_roofline_is_the_slower_of_compute_and_memory():
    # Decode: 14 GB of weights at 2 TB/s = 7 ms, far above 112 GFLOP at 1 PFLOP/s = 0.11 ms.
    assert roofline_seconds(112e9, 14e9, PROFILE, "bfloat16") == pytest.approx(7e-3)
    # Long prefill: 2 * 7e9 * 4096 FLOP at 1 PFLOP/s = 57 ms, above the same 7 ms of weights.
    assert roofline_seconds(2 * 7e9 * 4096, 14e9, PROFILE, "bfloat16") == pytest.approx(0.057344)


def test_bad_numbers_raise_value_error():
    with pytest.raises(ValueError, match="positive"):
        mfu(1.0, 0.0, PROFILE)
    with pytest.raises(ValueError, match="positive"):
        mbu(1.0, -1.0, PROFILE)
    with pytest.raises(ValueError, match="num_tokens"):
        step_flops(10, -1)
    with pytest.raises(ValueError, match="context_len"):
        attended_keys(5, 3)
    no_peaks = DeviceProfile(kind="cpu", name="x", compute_units=1, memory_bytes=1, memory_bandwidth=1.0)
    with pytest.raises(ValueError, match="peak"):
        mfu(1.0, 1.0, no_peaks)
