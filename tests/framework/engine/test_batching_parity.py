"""Continuous batching must not change what any request generates.

Reference: each request served alone by a fresh engine. Under test: all of them through one engine,
arriving at random steps, some sharing long prefixes, with chunked prefill, prefix caching on and
off, and a pool small enough to force preemption.
"""
import random

import pytest

from shared import SamplingParams
from tests.utils.engine import create_engine, create_model, run_alone

NUM_REQUESTS = 36
SHARED_PREFIX_LEN = 37


@pytest.fixture(scope="module")
def model():
    return create_model(seed=1)


def _workload(sampled: bool):
    rng = random.Random(7 if sampled else 5)
    prefix = [rng.randrange(256) for _ in range(SHARED_PREFIX_LEN)]
    requests = []
    for i in range(NUM_REQUESTS):
        tail = [rng.randrange(256) for _ in range(rng.randint(1, 30))]
        prompt = prefix[:rng.randint(16, SHARED_PREFIX_LEN)] + tail if i % 3 == 0 else tail
        if sampled:
            params = SamplingParams(temperature=1.0, seed=1000 + i, max_tokens=rng.randint(3, 20),
                                    top_k=rng.choice([-1, 20]), top_p=rng.choice([1.0, 0.9]),
                                    n=2 if i % 5 == 0 else 1)
        else:
            params = SamplingParams(temperature=0.0, max_tokens=rng.randint(3, 20))
        requests.append((f"r{i}", prompt, params, rng.randint(0, 25)))
    return requests


@pytest.fixture(scope="module", params=[False, True], ids=["greedy", "seeded"])
def workload_and_reference(request, model):
    workload = _workload(sampled=request.param)
    reference = {rid: run_alone(model, prompt, params) for rid, prompt, params, _ in workload}
    return workload, reference


def _run_together(model, workload, **config):
    engine = create_engine(model, **config)
    by_step = {}
    for item in workload:
        by_step.setdefault(item[3], []).append(item)
    results, step = {}, 0
    while step <= max(by_step) or engine.has_unfinished_requests():
        for rid, prompt, params, _ in by_step.get(step, []):
            engine.add_request(rid, prompt, params)
        for out in engine.step():
            if out.finished:
                results[out.request_id] = [c.token_ids for c in out.outputs]
        step += 1
    return engine, results


@pytest.mark.parametrize("config", [
    dict(max_num_batched_tokens=24, enable_prefix_caching=True),
    dict(max_num_batched_tokens=24, enable_prefix_caching=False),
    dict(max_num_batched_tokens=128, enable_chunked_prefill=False, max_num_seqs=8),
    dict(max_num_batched_tokens=24, num_kv_blocks=36, max_model_len=96),
    dict(max_num_batched_tokens=128, enable_chunked_prefill=False, num_kv_blocks=36, max_model_len=96),
], ids=["chunked+prefix-cache", "chunked", "whole-prompts", "tiny-pool", "whole-prompts+tiny-pool"])
def test_batched_equals_alone(model, workload_and_reference, config):
    workload, reference = workload_and_reference
    engine, results = _run_together(model, workload, **config)
    assert results == reference
    stats = engine.stats
    assert stats.num_kv_blocks_used == sum(1 for r in engine.block_manager.ref_counts if r)
    assert not any(engine.block_manager.ref_counts), "finished requests must release every block"
    if config.get("num_kv_blocks") == 36:
        assert stats.num_preemptions > 0
    if config.get("enable_prefix_caching", True):
        assert stats.num_prefix_cache_hits > 0
