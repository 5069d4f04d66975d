"""The interpreted Triton kernels inside the real model and engine: stories260K's logits, and greedy
generation through the paged KV cache with chunked prefill (steps mixing decode rows and prefill
chunks), equal the torch references. If triton was imported compiled in this process these skip,
and `test_triton_kernels.py` reruns this file in a fresh process."""
from __future__ import annotations

import contextlib

import pytest
import torch

from chip import override
from tests.shared_data import STORIES_HF

MODEL_DIR = STORIES_HF
pytestmark = pytest.mark.skipif(not MODEL_DIR.exists(), reason="shared models not present")


@pytest.fixture(scope="module")
def stories():
    from model.loader import load_model

    return load_model(MODEL_DIR, dtype="float32")


def test_stories260k_forward_with_triton_kernels_matches_reference(interpreted, stories):
    loaded = stories
    ids = torch.tensor([1, 400, 37, 90, 12, 7, 256, 3])
    positions = torch.arange(len(ids))
    with torch.no_grad():
        want = loaded.model.compute_logits(loaded.model(ids, positions))
        kernels = {"rms_norm": interpreted.norm_triton.rms_norm_triton,
                   "silu_and_mul": interpreted.activation_triton.silu_and_mul_triton,
                   "rotary": interpreted.rotary_triton.apply_rotary_triton}
        with contextlib.ExitStack() as stack:
            for op, kernel in kernels.items():
                stack.enter_context(override(op, kernel))
            got = loaded.model.compute_logits(loaded.model(ids, positions))
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def _generate(loaded, prompts: list[str]) -> dict[str, list[int]]:
    from framework.engine import LLMEngine
    from shared import EngineConfig, SamplingParams

    # A small token budget forces chunked prefill, so steps mix decode rows with prefill chunks.
    engine = LLMEngine(loaded.model, loaded.tokenizer,
                       EngineConfig(num_kv_blocks=32, block_size=8, max_num_batched_tokens=8))
    for i, prompt in enumerate(prompts):
        engine.add_request(f"r{i}", prompt, SamplingParams(temperature=0.0, max_tokens=5,
                                                           ignore_eos=True))
    tokens = {}
    while engine.has_unfinished_requests():
        tokens.update({o.request_id: o.outputs[0].token_ids for o in engine.step() if o.finished})
    return tokens


def test_engine_generation_with_triton_kernels_matches_reference(interpreted, stories):
    loaded = stories
    prompts = ["The little bird sat on a branch", "Tom"]
    # The model is tiny: one thread avoids OpenMP hand-offs that dominate on a busy machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _compare_generation(interpreted, loaded, prompts)
    finally:
        torch.set_num_threads(threads)


def _compare_generation(interpreted, loaded, prompts: list[str]) -> None:
    with contextlib.ExitStack() as stack:
        for op in ("rms_norm", "silu_and_mul", "rotary", "store_kv_cache", "paged_attention"):
            stack.enter_context(override(op, "reference"))
        want = _generate(loaded, prompts)
    kernels = {"rms_norm": interpreted.norm_triton.rms_norm_triton,
               "silu_and_mul": interpreted.activation_triton.silu_and_mul_triton,
               "rotary": interpreted.rotary_triton.apply_rotary_triton,
               "store_kv_cache": interpreted.kv_cache_triton.store_kv_cache_triton,
               "paged_attention": interpreted.attention_triton.paged_attention_cuda}
    steps = {"decode": 0, "varlen": 0}

    def counting_attention(q, k_cache, v_cache, block_tables, *args):
        steps["decode" if q.shape[0] == block_tables.shape[0] else "varlen"] += 1
        return kernels["paged_attention"](q, k_cache, v_cache, block_tables, *args)

    with contextlib.ExitStack() as stack:
        for op, kernel in {**kernels, "paged_attention": counting_attention}.items():
            stack.enter_context(override(op, kernel))
        got = _generate(loaded, prompts)
    assert got == want and all(len(t) == 5 for t in got.values())
    assert steps["decode"] > 0 and steps["varlen"] > 0, steps
