"""The official openai client (sync, async, streaming) against the live server on stories260K."""
from __future__ import annotations

import asyncio

import openai
import pytest

from tests.app.api.conftest import MODEL_DIR, MODEL_ID

PROMPT = [{"role": "user", "content": "Once upon a time, there was a little dog."}]


def test_models_lists_the_loaded_version(client):
    assert [m.id for m in client.models.list().data] == [MODEL_ID]


def test_chat_completion_with_usage_and_extras(client, live_server):
    reply = client.chat.completions.create(model=MODEL_ID, messages=PROMPT, max_tokens=12,
                                           temperature=0)
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("length", "stop")
    tokenizer = live_server.model.tokenizer
    completion_ids = tokenizer.encode(choice.message.content, add_bos=False)
    assert reply.usage.completion_tokens <= 12 and reply.usage.completion_tokens >= 1
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert abs(len(completion_ids) - reply.usage.completion_tokens) <= 2  # re-tokenizing may merge
    extra = reply.model_extra
    assert extra["model_version"] == MODEL_ID
    assert extra["conversation_id"].startswith("conv_") and extra["message_id"].startswith("msg_")


def test_greedy_matches_the_engine_run_directly(client, live_server):
    """The server adds nothing to the tokens: same ids as the engine given the same prompt."""
    from app.serving.chat_template import render_prompt_ids
    from shared import SamplingParams

    model = live_server.model
    prompt_ids = render_prompt_ids(model.tokenizer, PROMPT)
    reply = client.chat.completions.create(model=MODEL_ID, messages=PROMPT, max_tokens=10,
                                           temperature=0)

    async def direct():
        from framework.engine.async_engine import AsyncEngine
        from framework.engine.llm_engine import LLMEngine
        from model.loader import load_model
        from shared import EngineConfig

        loaded = load_model(MODEL_DIR)
        engine = AsyncEngine(LLMEngine(loaded.model, loaded.tokenizer, EngineConfig(num_kv_blocks=64)))
        async for out in engine.generate(prompt_ids, SamplingParams(max_tokens=10, temperature=0)):
            pass
        await engine.shutdown()
        return out.outputs[0].text

    assert asyncio.run(direct()) == reply.choices[0].message.content


def test_streamed_deltas_join_to_the_non_streamed_text(client):
    for params in ({"temperature": 0}, {"temperature": 1.0, "seed": 7}):
        full = client.chat.completions.create(model=MODEL_ID, messages=PROMPT, max_tokens=24, **params)
        stream = client.chat.completions.create(model=MODEL_ID, messages=PROMPT, max_tokens=24,
                                                stream=True, stream_options={"include_usage": True},
                                                **params)
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == full.choices[0].message.content
        assert chunks[0].choices[0].delta.role == "assistant"
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == full.choices[0].finish_reason
        assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == full.usage.completion_tokens
        assert all(c.usage is None for c in chunks[:-1])
        assert len({c.model_extra["conversation_id"] for c in chunks}) == 1


def test_seed_reproduces_and_different_seeds_differ(client):
    def sample(seed):
        return client.chat.completions.create(model=MODEL_ID, messages=PROMPT, max_tokens=30,
                                              temperature=1.0, seed=seed).choices[0].message.content
    assert sample(1) == sample(1)
    assert len({sample(1), sample(2), sample(3)}) > 1


def test_n_choices_are_indexed_and_share_the_prompt(client):
    reply = client.chat.completions.create(model=MODEL_ID, messages=PROMPT, max_tokens=16, n=3,
                                           temperature=1.0, seed=3, extra_body={"ignore_eos": True})
    assert sorted(c.index for c in reply.choices) == [0, 1, 2]
    assert len({c.message.content for c in reply.choices}) > 1
    assert len(reply.model_extra["message_ids"]) == 3
    assert all(c.finish_reason == "length" for c in reply.choices)
    assert reply.usage.completion_tokens == 3 * 16


def test_stop_string_ends_the_text_before_it(client):
    free = client.completions.create(model=MODEL_ID, prompt="Once upon a time", max_tokens=30,
                                     temperature=0).choices[0].text
    stop_word = free.split()[3]
    stopped = client.completions.create(model=MODEL_ID, prompt="Once upon a time", max_tokens=30,
                                        temperature=0, stop=[stop_word]).choices[0]
    assert stopped.finish_reason == "stop"
    assert stop_word not in stopped.text and free.startswith(stopped.text)


def test_completion_logprobs_are_consistent(client):
    reply = client.completions.create(model=MODEL_ID, prompt="The cat", max_tokens=6, temperature=0,
                                      logprobs=3)
    logprobs = reply.choices[0].logprobs
    assert len(logprobs.token_logprobs) == reply.usage.completion_tokens == 6
    for chosen, top in zip(logprobs.token_logprobs, logprobs.top_logprobs):
        assert len(top) == 3 and chosen <= 0.0
        assert chosen == pytest.approx(max(top.values()), abs=1e-5)  # greedy picks the top one


def test_chat_logprobs_and_top_logprobs(client):
    reply = client.chat.completions.create(model=MODEL_ID, messages=PROMPT, max_tokens=5,
                                           temperature=0, logprobs=True, top_logprobs=2)
    content = reply.choices[0].logprobs.content
    assert len(content) == 5
    for entry in content:
        assert len(entry.top_logprobs) == 2
        assert entry.top_logprobs[0].logprob >= entry.top_logprobs[1].logprob
        assert entry.logprob == pytest.approx(entry.top_logprobs[0].logprob, abs=1e-5)


def test_completions_with_token_ids_and_max_tokens(client):
    reply = client.completions.create(model=MODEL_ID, prompt=[1, 400, 300, 200], max_tokens=7,
                                      temperature=0, extra_body={"ignore_eos": True})
    assert reply.usage.prompt_tokens == 4 and reply.usage.completion_tokens == 7
    assert reply.choices[0].finish_reason == "length"


def test_async_client_streams_concurrently(live_server):
    async def run():
        async with openai.AsyncOpenAI(base_url=f"{live_server.url}/v1", api_key="x",
                                      max_retries=0) as aclient:
            async def one(seed):
                stream = await aclient.completions.create(model=MODEL_ID, prompt="A dog", seed=seed,
                                                          max_tokens=10, temperature=1.0, stream=True)
                return "".join([c.choices[0].text async for c in stream if c.choices])
            return await asyncio.gather(*(one(s) for s in range(4)))
    texts = asyncio.run(run())
    assert all(texts) and len(set(texts)) > 1


def test_openai_errors_map_to_client_exceptions(client):
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=PROMPT)
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL_ID, messages=PROMPT, max_tokens=100_000)
    assert e.value.body["param"] == "max_tokens" and e.value.body["code"] == "context_length_exceeded"


def test_streamed_n_choices_match_the_non_streamed_ones(client):
    params = dict(model=MODEL_ID, prompt="The sun", max_tokens=10, temperature=1.0, seed=21, n=2)
    full = client.completions.create(**params)
    texts = {0: "", 1: ""}
    for chunk in client.completions.create(**params, stream=True):
        for choice in chunk.choices:
            texts[choice.index] += choice.text
    assert texts == {c.index: c.text for c in full.choices}
