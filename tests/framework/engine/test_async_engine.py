"""AsyncEngine: concurrent streams, cancellation frees blocks, queue-full, hot model swap."""
import asyncio

import pytest

from framework.engine import AsyncEngine, QueueFullError
from framework.engine.async_engine import stream_deltas
from shared import CompletionOutput, RequestOutput, SamplingParams
from tests.utils.engine import create_engine, create_model, run_alone


@pytest.fixture(scope="module")
def model():
    return create_model(seed=3)


async def _collect(engine, prompt, params, request_id):
    outputs = [o async for o in engine.generate(prompt, params, request_id)]
    return outputs


async def test_concurrent_generators_each_get_their_own_tokens(model):
    engine = AsyncEngine(create_engine(model, max_num_batched_tokens=16))
    prompts = [[65 + i] * (3 + 5 * i) for i in range(6)]
    tasks = [_collect(engine, p, SamplingParams(temperature=0, max_tokens=6 + i, ignore_eos=True), f"c{i}")
             for i, p in enumerate(prompts)]
    results = await asyncio.gather(*tasks)
    for i, outputs in enumerate(results):
        assert outputs[-1].finished and all(not o.finished for o in outputs[:-1])
        ids = [o.outputs[0].token_ids for o in outputs]
        assert all(a == b[:len(a)] for a, b in zip(ids, ids[1:]))  # cumulative
        expected = run_alone(model, prompts[i], SamplingParams(temperature=0, max_tokens=6 + i, ignore_eos=True))
        assert ids[-1] == expected[0]
    await engine.shutdown()


async def test_cancelling_a_stream_frees_its_blocks_within_a_step(model):
    core = create_engine(model)
    engine = AsyncEngine(core)
    stream = engine.generate("x" * 30, SamplingParams(max_tokens=200, ignore_eos=True), "long")
    await anext(stream)
    await anext(stream)
    assert core.block_manager.num_used_blocks > 0
    await stream.aclose()
    # A second request drives the loop: the abort is applied before its first step.
    done = await _collect(engine, "y", SamplingParams(max_tokens=2), "short")
    assert done[-1].finished
    assert not core.requests and not any(core.block_manager.ref_counts)
    assert engine.stats.num_aborted == 1
    await engine.shutdown()


async def test_task_cancellation_aborts(model):
    core = create_engine(model)
    engine = AsyncEngine(core)
    started = asyncio.Event()

    async def consume():
        async for _ in engine.generate("z" * 20, SamplingParams(max_tokens=500, ignore_eos=True), "cancel-me"):
            started.set()

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(50):
        if not core.requests:
            break
        await asyncio.sleep(0.01)
    assert not core.requests and not any(core.block_manager.ref_counts)
    await engine.shutdown()


async def test_queue_full_and_bad_input_raise_before_streaming(model):
    engine = AsyncEngine(create_engine(model, max_queue_len=1))
    with pytest.raises(ValueError):
        await anext(engine.generate("c" * 1000, SamplingParams(), "too-long"))
    first = engine.generate("a", SamplingParams(max_tokens=3), "a")
    second = engine.generate("b", SamplingParams(max_tokens=3), "b")
    first_task = asyncio.create_task(anext(first))
    await asyncio.sleep(0)  # "a" is queued, not yet admitted by a step
    with pytest.raises(QueueFullError):
        await anext(second)
    assert (await first_task).request_id == "a"
    assert [o async for o in first][-1].finished
    await engine.shutdown()


async def test_stream_deltas_splits_cumulative_outputs():
    async def cumulative():
        for text, ids in (("He", [1]), ("Hell", [1, 2]), ("Hello", [1, 2, 3])):
            yield RequestOutput("r", None, [0], [CompletionOutput(0, text, ids)])

    deltas = [o.outputs[0] async for o in stream_deltas(cumulative())]
    assert [(d.text, d.token_ids) for d in deltas] == [("He", [1]), ("ll", [2]), ("o", [3])]


async def test_deltas_and_hot_swap(model):
    other = create_model(seed=4)
    engine = AsyncEngine(create_engine(model))
    params = SamplingParams(temperature=0, max_tokens=12, ignore_eos=True)
    stream = stream_deltas(engine.generate("swap me", params, "swap"))
    pieces = [await anext(stream) for _ in range(3)]
    await engine.swap_model(other, engine.engine.tokenizer)
    pieces += [p async for p in stream]
    ids = [t for p in pieces for t in p.outputs[0].token_ids]
    assert len(ids) == 12 and pieces[-1].finished
    assert engine.engine.model is other and not any(engine.engine.block_manager.ref_counts)
    await engine.shutdown()
