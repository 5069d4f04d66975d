"""Prompt log-probabilities (SamplingParams.prompt_logprobs) equal transformers' log_softmax over
the prompt, whatever the engine does with the prompt: one prefill, chunked prefill, a prefix-cache
hit on the same prompt, a forking n > 1 request, or a preempted and recomputed sequence. And
logit_bias steers sampling without touching logprobs."""

import pytest
import torch

from framework.engine import LLMEngine
from shared import EngineConfig, SamplingParams
from tests.shared_data import STORIES_HF

ATOL = 1e-4  # float32 end to end; paged attention vs transformers' eager attention
PROMPTS = ["Once upon a time, there was a little girl named Lily. She loved to play",
           "The little bird sang a song",
           "Tom and Sue went to the park and they saw a big dog. The dog was"]

pytestmark = pytest.mark.skipif(not STORIES_HF.exists(), reason="needs the stories260K model")


@pytest.fixture(scope="module")
def loaded():
    from model.loader import load_model

    return load_model(STORIES_HF, dtype="float32")


@pytest.fixture(scope="module")
def reference():
    transformers = pytest.importorskip("transformers")
    model = transformers.LlamaForCausalLM.from_pretrained(STORIES_HF, dtype=torch.float32).eval()

    def log_softmax(ids: list[int]) -> torch.Tensor:  # (len(ids), V)
        with torch.no_grad():
            return model(torch.tensor([ids])).logits[0].float().log_softmax(-1)
    return log_softmax


def _run(engine: LLMEngine, requests: dict[str, tuple[str, SamplingParams]]) -> dict:
    for request_id, (prompt, params) in requests.items():
        engine.add_request(request_id, prompt, params)
    done = {}
    while engine.has_unfinished_requests():
        done.update({o.request_id: o for o in engine.step() if o.finished})
    return done


def _assert_prompt_logprobs(output, expected: torch.Tensor, top_n: int) -> None:
    ids = output.prompt_token_ids
    assert output.prompt_logprobs is not None and len(output.prompt_logprobs) == len(ids)
    assert output.prompt_logprobs[0] is None  # nothing precedes the first token
    for position in range(1, len(ids)):
        entry, row, token = output.prompt_logprobs[position], expected[position - 1], ids[position]
        assert entry[token].logprob == pytest.approx(row[token].item(), abs=ATOL)
        assert entry[token].rank == int((row > row[token]).sum()) + 1
        assert entry[token].decoded_token is not None
        top_values, top_ids = row.topk(top_n)
        for rank, (value, token_id) in enumerate(zip(top_values.tolist(), top_ids.tolist()), 1):
            assert entry[token_id].logprob == pytest.approx(value, abs=ATOL)
            assert entry[token_id].rank == rank
        assert len(entry) <= top_n + 1


@pytest.mark.parametrize("config", [
    dict(),  # one prefill per prompt
    dict(max_num_batched_tokens=8, block_size=4),  # chunked prefill: 8 tokens a step
    dict(num_kv_blocks=12, block_size=4),  # a small pool: sequences get preempted and recomputed
], ids=["prefill", "chunked", "preempted"])
def test_prompt_logprobs_match_transformers(loaded, reference, config):
    engine = LLMEngine(loaded.model, loaded.tokenizer,
                       EngineConfig(**{"num_kv_blocks": 64, "block_size": 8, **config}))
    requests = {f"r{i}": (prompt, SamplingParams(temperature=0, max_tokens=8, ignore_eos=True,
                                                 prompt_logprobs=2 if i else 0))
                for i, prompt in enumerate(PROMPTS)}
    requests["plain"] = (PROMPTS[0], SamplingParams(temperature=0, max_tokens=8, ignore_eos=True))
    done = _run(engine, requests)
    if config.get("num_kv_blocks") == 12:
        assert engine.stats.num_preemptions > 0
    for i in range(len(PROMPTS)):
        out = done[f"r{i}"]
        _assert_prompt_logprobs(out, reference(out.prompt_token_ids), 2 if i else 0)
    # scoring the prompt changes nothing about what is generated
    assert done["plain"].prompt_logprobs is None
    assert done["plain"].outputs[0].token_ids == done["r0"].outputs[0].token_ids


def test_prompt_logprobs_after_a_prefix_cache_hit(loaded, reference):
    engine = LLMEngine(loaded.model, loaded.tokenizer, EngineConfig(num_kv_blocks=64, block_size=4))
    warm = _run(engine, {"warm": (PROMPTS[0], SamplingParams(max_tokens=2))})
    again = _run(engine, {"again": (PROMPTS[0], SamplingParams(max_tokens=2))})
    assert again["again"].num_cached_tokens > 0  # the prompt's blocks are cached
    scored = _run(engine, {"scored": (PROMPTS[0], SamplingParams(max_tokens=2, prompt_logprobs=1))})
    out = scored["scored"]
    assert out.num_cached_tokens == 0  # scored from position 0, not read from the cache
    assert out.prompt_token_ids == warm["warm"].prompt_token_ids
    _assert_prompt_logprobs(out, reference(out.prompt_token_ids), 1)


def test_prompt_logprobs_with_n_samples(loaded, reference):
    engine = LLMEngine(loaded.model, loaded.tokenizer, EngineConfig(num_kv_blocks=64, block_size=4))
    out = _run(engine, {"n3": (PROMPTS[1], SamplingParams(n=3, temperature=1.0, seed=1,
                                                          max_tokens=4, prompt_logprobs=1))})["n3"]
    assert len(out.outputs) == 3
    _assert_prompt_logprobs(out, reference(out.prompt_token_ids), 1)


def test_logit_bias_steers_sampling_not_logprobs(loaded, reference):
    engine = LLMEngine(loaded.model, loaded.tokenizer, EngineConfig(num_kv_blocks=64, block_size=8))
    prompt_ids = loaded.tokenizer.encode(PROMPTS[1], add_bos=True)
    row = reference(prompt_ids)[-1]
    best, second = row.topk(2).indices.tolist()
    forced = int(row.argmin())  # the least likely token, made certain by +100
    done = _run(engine, {
        "ban": (PROMPTS[1], SamplingParams(temperature=0, max_tokens=1, logprobs=0,
                                           logit_bias={best: -100})),
        "force": (PROMPTS[1], SamplingParams(temperature=0.7, seed=3, max_tokens=5, ignore_eos=True,
                                             logit_bias={forced: 100})),
    })
    banned = done["ban"].outputs[0]
    assert banned.token_ids == [second]  # greedy picks the runner-up once the best is banned
    assert banned.logprobs[0][second].logprob == pytest.approx(row[second].item(), abs=ATOL)
    assert done["force"].outputs[0].token_ids == [forced] * 5


@pytest.mark.parametrize("bias, message", [
    ({512: 1.0}, "vocabulary"), ({3: 100.5}, r"\[-100, 100\]"), ({-1: 1.0}, "non-negative"),
    ({3: float("nan")}, r"\[-100, 100\]"),
])
def test_bad_logit_bias_is_refused(loaded, bias, message):
    engine = LLMEngine(loaded.model, loaded.tokenizer, EngineConfig(num_kv_blocks=16, block_size=8))
    with pytest.raises(ValueError, match=message):
        engine.add_request("bad", "hi", SamplingParams(logit_bias=bias))
    assert not engine.has_unfinished_requests()
