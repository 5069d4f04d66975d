"""The start-up warm-up (framework.engine.warmup) leaves no trace: the pool, the prefix cache and
the counters look untouched, and what the engine then generates equals a fresh engine's."""
import pytest

from framework.engine.warmup import warm_up
from shared import SamplingParams
from tests.utils.engine import create_engine, create_model, greedy_batch


@pytest.fixture(scope="module")
def model():
    return create_model(seed=5)


def test_warm_up_runs_its_steps_then_leaves_the_engine_as_built(model):
    engine = create_engine(model, max_num_batched_tokens=64, max_num_seqs=4)
    steps = []  # (tokens, sequences) of every forward pass
    real_run = engine.model_runner.run
    engine.model_runner.run = (
        lambda s: steps.append((s.num_batched_tokens, len(s.seqs))) or real_run(s))
    assert warm_up(engine) >= 0
    del engine.model_runner.run
    # a full token budget alone, the batch's prefill (4 x 4 tokens), its decode steps of 4..1 rows
    assert steps == [(64, 1), (16, 4), (4, 4), (3, 3), (2, 2), (1, 1)]
    manager = engine.block_manager
    assert manager.num_free_blocks == manager.num_blocks and not any(manager.ref_counts)
    assert not engine.requests and not engine.scheduler.running and not engine.scheduler.waiting
    stats = engine.stats
    assert (stats.num_steps, stats.num_finished, stats.num_prefix_cache_queries,
            stats.num_prefix_cache_hits, stats.num_preemptions) == (0, 0, 0, 0, 0)
    assert not manager.hash_to_block  # its prompts can never be served from the cache

    prompts = [[1, 2, 3, 4, 5, 6, 7, 8, 9], [40, 41, 42], list(range(100, 160))]
    assert greedy_batch(engine, prompts, 6) == greedy_batch(
        create_engine(model, max_num_batched_tokens=64, max_num_seqs=4), prompts, 6)


def test_warm_up_fits_a_tiny_context(model):
    engine = create_engine(model, max_model_len=4, num_kv_blocks=2, block_size=2)
    warm_up(engine)
    assert engine.block_manager.num_free_blocks == 2 and not engine.requests


def test_warm_up_refuses_a_busy_engine(model):
    engine = create_engine(model)
    engine.add_request("busy", [1, 2, 3], SamplingParams(max_tokens=2))
    with pytest.raises(RuntimeError, match="idle"):
        warm_up(engine)
