"""Per-request prefix-cache isolation through the engine: `cache_salt` and `skip_prefix_cache`.

Measured with the block manager's hit counters; the reference for every answer is the same
greedy request on an engine without prefix caching, token for token.
"""
import hashlib
import random

import pytest

from framework.engine.block_manager import BlockManager
from shared import SamplingParams
from tests.utils.engine import create_engine, create_model, greedy_batch, run_alone

_rng = random.Random(4)
PROMPT = [_rng.randrange(256) for _ in range(30)]


@pytest.fixture(scope="module")
def model():
    return create_model(seed=2)


def _serve(engine, prompt, **params) -> tuple[list[int], int]:
    """One greedy request run to the end: (its tokens, prompt tokens it found cached)."""
    hits_before = engine.block_manager.num_cache_hits
    engine.add_request("one", prompt, SamplingParams(temperature=0.0, max_tokens=6, ignore_eos=True,
                                                     **params))
    final = None
    while engine.has_unfinished_requests():
        for out in engine.step():
            final = out
    assert final.num_cached_tokens == engine.block_manager.num_cache_hits - hits_before
    return final.outputs[0].token_ids, final.num_cached_tokens


def test_salts_share_only_within_themselves(model):
    greedy = SamplingParams(temperature=0.0, max_tokens=6, ignore_eos=True)
    expected = run_alone(model, PROMPT, greedy, enable_prefix_caching=False)[0]
    engine = create_engine(model)
    runs = [_serve(engine, PROMPT, cache_salt="tenant-a"),
            _serve(engine, PROMPT, cache_salt="tenant-b"),
            _serve(engine, PROMPT),  # no salt is a salt of its own
            _serve(engine, PROMPT, cache_salt="tenant-a"),
            _serve(engine, PROMPT, cache_salt="tenant-b")]
    assert [cached for _, cached in runs] == [0, 0, 0, 28, 28]
    assert all(tokens == expected for tokens, _ in runs)


def test_opt_out_neither_reads_nor_publishes(model):
    engine = create_engine(model)
    first, cached = _serve(engine, PROMPT)
    assert cached == 0
    assert _serve(engine, PROMPT, skip_prefix_cache=True) == (first, 0)  # would have hit 28
    private = PROMPT[::-1]
    private_tokens, _ = _serve(engine, private, skip_prefix_cache=True)
    assert _serve(engine, private) == (private_tokens, 0)  # nothing was published
    assert _serve(engine, private)[1] == 28


def test_colliding_digests_leave_answers_unchanged(model):
    """An 8-bit digest collides constantly; answers still equal a run without prefix caching."""
    rng = random.Random(9)
    openings = [[rng.randrange(4) for _ in range(8)] for _ in range(3)]
    prompts = [rng.choice(openings + [[]]) + [rng.randrange(4) for _ in range(rng.randint(1, 12))]
               for _ in range(48)]
    uncached = create_engine(model, enable_prefix_caching=False)
    reference = greedy_batch(uncached, prompts, max_tokens=4)
    engine = create_engine(model)
    engine.block_manager = engine.scheduler.block_manager = BlockManager(
        engine.block_manager.num_blocks, engine.block_manager.block_size,
        digest=lambda data: hashlib.sha256(data).digest()[:1])
    served = []
    for i in range(0, len(prompts), 8):  # in batches, so later ones find earlier ones cached
        served += greedy_batch(engine, prompts[i:i + 8], max_tokens=4)
    assert served == reference
    assert engine.block_manager.num_rejected_hits > 0 and engine.block_manager.num_cache_hits > 0
