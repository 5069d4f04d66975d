"""`LLM(..., tensor_parallel_size=2)` on stories260K: 2 CPU processes over gloo generate exactly
what one process generates (batched greedy, a forked n=2 request whose shared KV block is copied on
write, prompt logprobs), rank 0 streams; and a worker that dies fails the requests with an error
naming it instead of hanging.

One tensor-parallel engine serves the whole module (spawning costs seconds on 2 cores); the
test that kills its worker runs last."""
from __future__ import annotations

import threading

import pytest

from app.llm import LLM
from framework.distributed.engine import TensorParallelError
from shared import SamplingParams
from tests.shared_data import STORIES_HF

PROMPTS = ["Once upon a time", "The little dog", "Lily and Ben went to the park. They saw",
           "One day, a big red", "Tom had a toy car", "Sue", "The sun was hot and the", "A cat"]
GREEDY = SamplingParams(temperature=0.0, max_tokens=32)
OPTIONS = dict(device="cpu", num_kv_blocks=96, block_size=8, seed=0)
HANG_GUARD_S = 60  # a step on a dead group must raise well within this (it raises at once)


@pytest.fixture(scope="module")
def single():
    return LLM(str(STORIES_HF), **OPTIONS)


@pytest.fixture(scope="module")
def parallel():
    llm = LLM(str(STORIES_HF), tensor_parallel_size=2, **OPTIONS)
    yield llm
    llm.shutdown()


def token_ids(outputs) -> list[list[list[int]]]:
    return [[list(c.token_ids) for c in out.outputs] for out in outputs]


def test_batched_greedy_equals_one_process(single, parallel):
    expected = single.generate(PROMPTS, GREEDY, use_tqdm=False)
    got = parallel.generate(PROMPTS, GREEDY, use_tqdm=False)
    assert token_ids(got) == token_ids(expected)
    assert [o.outputs[0].text for o in got] == [o.outputs[0].text for o in expected]
    assert all(len(o.outputs[0].token_ids) > 5 for o in got)


def test_fork_and_prompt_logprobs_equal_one_process(single, parallel):
    # n=2 prefills once and forks: the children share the prompt's last block until each
    # appends, so the scheduler emits copy-on-write block copies that every rank must apply.
    params = [SamplingParams(temperature=0.0, max_tokens=20, n=2),
              SamplingParams(temperature=0.0, max_tokens=8, prompt_logprobs=2)]
    prompts = ["Once upon a time there was a girl", "The little dog ran"]
    expected = single.generate(prompts, params, use_tqdm=False)
    runner, copies = parallel.engine.model_runner, []
    original = runner.copy_blocks
    runner.copy_blocks = lambda pairs: (copies.extend(pairs), original(pairs))
    try:
        got = parallel.generate(prompts, params, use_tqdm=False)
    finally:
        del runner.copy_blocks
    assert copies, "the forked request made no copy-on-write block copy"
    assert token_ids(got) == token_ids(expected)
    for mine, theirs in zip(got[1].prompt_logprobs[1:], expected[1].prompt_logprobs[1:]):
        assert mine.keys() == theirs.keys()
        for token_id in mine:
            assert mine[token_id].logprob == pytest.approx(theirs[token_id].logprob, abs=1e-4)


def test_rank0_streams(single, parallel):
    chunks = list(parallel.stream("Once upon a time", GREEDY))
    assert len(chunks) > 3 and chunks[-1].finished
    assert list(chunks[-1].outputs[0].token_ids) == token_ids(
        single.generate(["Once upon a time"], GREEDY, use_tqdm=False))[0][0]


def test_a_worker_dying_mid_generation_fails_the_requests_with_a_clear_error(parallel):
    outcome: dict = {}
    long = SamplingParams(temperature=0.0, max_tokens=400, ignore_eos=True)

    def generate() -> None:
        try:
            parallel.generate(PROMPTS, long, use_tqdm=False)
        except Exception as e:  # noqa: BLE001 - inspected below
            outcome["error"] = e

    steps_before = parallel.engine.stats.num_steps
    thread = threading.Thread(target=generate, daemon=True)
    thread.start()
    while parallel.engine.stats.num_steps < steps_before + 3 and thread.is_alive():
        thread.join(0.05)  # until decoding is under way: the requests are in flight
    worker = parallel._tensor_parallel.processes[0]
    worker.kill()
    thread.join(HANG_GUARD_S)
    assert not thread.is_alive(), f"generate still blocked {HANG_GUARD_S} s after the worker died"
    error = outcome.get("error")
    assert isinstance(error, TensorParallelError), repr(error)
    assert "rank 1" in str(error) and "exited with code -9" in str(error)
    assert not parallel.engine.requests  # every request was failed and released
    with pytest.raises(TensorParallelError):  # the engine stays failed: no half-working group
        parallel.generate(["A cat"], GREEDY, use_tqdm=False)
