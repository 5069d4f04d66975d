"""CompletionBatch on a real AsyncEngine (tiny random model): a prompt the engine refuses fails the
whole batch before anything is answered and leaves nothing running; echo-only streams the prompt
and no generated token; streamed deltas add up to the final answer."""
from __future__ import annotations

import pytest

from app.api import history
from app.api.completion_batch import CompletionBatch, EchoMode, PromptRun
from app.serving.engine_client import AsyncEngineClient, EngineBusyError
from app.serving.generation import GenerationRun
from framework.engine import AsyncEngine
from shared import SamplingParams
from tests.utils.byte_tokenizer import ByteTokenizer
from tests.utils.engine import create_engine, create_model

TEXTS = ["abc", "hello there", "xyz!"]


@pytest.fixture(scope="module")
def model():
    return create_model(seed=5)


def _batch(engine: AsyncEngine, params: SamplingParams, mode: EchoMode) -> CompletionBatch:
    tokenizer, client = ByteTokenizer(), AsyncEngineClient(engine)
    prompts = [PromptRun(GenerationRun(client, "m", tokenizer.encode(t), params, f"b-{i}"), t,
                         history.plan_completion(t, params.n)) for i, t in enumerate(TEXTS)]
    return CompletionBatch(prompts, n=params.n, mode=mode, request_id="b", model_id="m")


async def test_a_refused_prompt_fails_the_batch_and_aborts_the_rest(model):
    core = create_engine(model, max_queue_len=2)
    engine = AsyncEngine(core)
    batch = _batch(engine, SamplingParams(max_tokens=50, ignore_eos=True), EchoMode())
    deltas = batch.deltas()
    with pytest.raises(EngineBusyError):
        await anext(deltas)  # nothing was answered: the route can still send a clean 429
    # the prompts that were queued are aborted; one more request drives the loop past them
    async for _ in AsyncEngineClient(engine).generate([65], SamplingParams(max_tokens=1), "x"):
        pass
    assert not core.requests and not any(core.block_manager.ref_counts)
    await engine.shutdown()


async def test_echo_only_streams_the_prompt_alone(model):
    engine = AsyncEngine(create_engine(model))
    batch = _batch(engine, SamplingParams(max_tokens=1, n=2, prompt_logprobs=1, logprobs=1,
                                          temperature=0), EchoMode(echo=True, echo_only=True))
    streamed = {}
    async for deltas in batch.deltas():
        for delta in deltas:
            text, ids, logprobs, _ = streamed.get(delta.index, ("", [], [], None))
            streamed[delta.index] = (text + delta.text, ids + delta.token_ids,
                                     logprobs + delta.logprobs, delta.finish_reason)
    final = batch.final
    assert sorted(streamed) == [c.index for c in final.outputs] == list(range(6))
    for choice in final.outputs:
        prompt = TEXTS[choice.index // 2]
        assert choice.text == prompt and choice.finish_reason == "length"
        assert choice.token_ids == ByteTokenizer().encode(prompt)  # no generated token
        assert choice.logprobs[0] is None and len(choice.logprobs) == len(choice.token_ids)
        text, ids, logprobs, finish_reason = streamed[choice.index]
        assert (text, ids, finish_reason) == (choice.text, choice.token_ids, "length")
        assert [e and {t: lp.logprob for t, lp in e.items()} for e in logprobs] == \
            [e and {t: lp.logprob for t, lp in e.items()} for e in choice.logprobs]
    assert final.completion_tokens == 0
    assert final.prompt_tokens == sum(len(ByteTokenizer().encode(t)) for t in TEXTS)
    await engine.shutdown()
