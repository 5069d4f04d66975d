"""Speculative decoding changes how fast tokens come, never which: greedy outputs equal the
engine's without speculation (n-gram and draft-model proposals, across k, chunked prefill with a
tiny token budget, a pool small enough to preempt, with non-speculating requests in the same
steps); rejected drafts leave no blocks behind; seeded sampling keeps the target distribution."""
from __future__ import annotations

import copy
import math
import random

import pytest
import torch

from framework.engine import LLMEngine
from shared import EngineConfig, SamplingParams, SpeculativeConfig
from tests.utils.byte_tokenizer import ByteTokenizer
from tests.utils.engine import create_engine, create_model

MAX_TOKENS = 40
NGRAM = {"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_max": 3,
         "prompt_lookup_min": 2}


@pytest.fixture(scope="module")
def model():
    return create_model(seed=1)


@pytest.fixture(scope="module")
def prompts():
    rng = random.Random(3)
    prompts = []
    for i in range(10):
        if i % 2:  # a repeated phrase: prompt lookup finds it again in the output
            phrase = [rng.randrange(256) for _ in range(rng.randint(3, 9))]
            prompts.append(phrase * rng.randint(2, 4))
        else:
            prompts.append([rng.randrange(256) for _ in range(rng.randint(1, 45))])
    return prompts


def _params(i: int, speculative: bool | None = None) -> SamplingParams:
    extra = {"repetition_penalty": 1.3} if i % 5 == 4 else {}  # never speculates
    return SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS - i, ignore_eos=True,
                          speculative=speculative, **extra)


def _engine(model, spec: dict | None, **config) -> LLMEngine:
    config.setdefault("num_kv_blocks", 256)
    config.setdefault("block_size", 4)
    draft = spec.pop("_draft") if spec and "_draft" in spec else None
    return LLMEngine(model, ByteTokenizer(), EngineConfig(speculative_config=spec, **config),
                     draft_model=draft)


def _run(engine: LLMEngine, prompts, params_of=_params, check_blocks: bool = False):
    for i, prompt in enumerate(prompts):
        engine.add_request(f"r{i}", prompt, params_of(i))
    done = {}
    while engine.has_unfinished_requests():
        for out in engine.step():
            if out.finished:
                done[out.request_id] = out.outputs[0].token_ids
        if check_blocks:
            _assert_no_draft_state(engine)
    assert engine.block_manager.num_free_blocks == engine.block_manager.num_blocks
    return [done[f"r{i}"] for i in range(len(prompts))]


def _assert_no_draft_state(engine: LLMEngine) -> None:
    """Between steps: no drafts in any sequence, no block past its computed tokens."""
    size = engine.block_manager.block_size
    for seq in engine.scheduler.running:
        assert seq.num_spec_tokens == 0 and seq.spec_draft_probs is None
        assert len(seq.block_table) == math.ceil(seq.num_computed_tokens / size)


@pytest.fixture(scope="module")
def reference(model, prompts):
    return _run(create_engine(model), prompts)


def _spec(name: str, model) -> dict:
    if name == "ngram-k4":
        return dict(NGRAM)
    if name == "ngram-k1":
        return {"method": "ngram", "num_speculative_tokens": 1, "prompt_lookup_max": 1}
    if name == "draft-same-k3":  # the target itself, as a separate instance: every draft is kept
        return {"model": "same", "num_speculative_tokens": 3, "_draft": copy.deepcopy(model)}
    return {"model": "random", "num_speculative_tokens": 2, "_draft": create_model(seed=9)}


ENGINE_CONFIGS = {
    "default": {},
    "budget-7": {"max_num_batched_tokens": 7},  # chunked prefill; drafts cut to what fits
    "pool-20": {"num_kv_blocks": 20, "enable_prefix_caching": False},  # preemption
}


@pytest.mark.parametrize("spec_name", ["ngram-k4", "ngram-k1", "draft-same-k3", "draft-random-k2"])
@pytest.mark.parametrize("config_name", list(ENGINE_CONFIGS))
def test_greedy_output_equals_non_speculative(model, prompts, reference, spec_name, config_name):
    engine = _engine(model, _spec(spec_name, model), **ENGINE_CONFIGS[config_name])
    assert _run(engine, prompts, check_blocks=True) == reference
    stats = engine.stats
    assert stats.num_spec_drafts > 0
    if spec_name == "draft-same-k3":
        assert stats.spec_acceptance_rate == 1.0
    elif spec_name.startswith("ngram"):
        assert stats.num_spec_accepted_tokens > 0
    if config_name == "pool-20":
        assert stats.num_preemptions > 0


@pytest.mark.parametrize("batch_size", [1, 3])
def test_batch_sizes_and_prompt_lookup_pays_off(model, prompts, reference, batch_size):
    engine = _engine(model, dict(NGRAM), max_num_seqs=batch_size)
    assert _run(engine, prompts) == reference
    stats = engine.stats
    assert stats.spec_tokens_per_pass > 1.5  # the repeated phrases are found again
    assert stats.num_generation_tokens == sum(map(len, reference))


def test_per_request_switch_and_engine_default(model, prompts, reference):
    on = _engine(model, {**NGRAM, "enable_by_default": False})
    assert _run(on, prompts, lambda i: _params(i, speculative=i % 2 == 1)) == reference
    assert 0 < on.stats.num_spec_drafts
    off = _engine(model, dict(NGRAM))
    assert _run(off, prompts, lambda i: _params(i, speculative=False)) == reference
    assert off.stats.num_spec_drafts == 0
    with pytest.raises(ValueError, match="speculative_config"):
        create_engine(model).add_request("x", [1, 2], SamplingParams(speculative=True))


def test_config_validation():
    assert SpeculativeConfig.from_dict({"model": "d", "num_speculative_tokens": 2}).method == "draft_model"
    for bad in ({"num_speculative_tokens": 0}, {"method": "eagle", "num_speculative_tokens": 2},
                {"num_speculative_tokens": 2, "prompt_lookup_min": 3, "prompt_lookup_max": 2},
                {"num_speculative_tokens": 2, "lookahead": 1}, {"method": "draft_model",
                                                                "num_speculative_tokens": 2}):
        with pytest.raises(ValueError, match="speculative_config"):
            EngineConfig(speculative_config=bad)


def test_seeded_sampling_keeps_the_target_distribution(model):
    """Three tokens after one prompt at top-k 3: the first comes from the prefill, the next two
    from one verified row (a draft from a perturbed copy of the target, whose q differs from p,
    plus the token after it). Their joint frequencies must match p(t1) p(t2 | t1) p(t3 | t1 t2) computed from
    the target's own logprobs without speculation."""
    prompt, num_samples = [5, 6, 7, 8], 1500
    expected = _joint_distribution(model, prompt, num_tokens=3, top_k=3)
    engine = _engine(model, {"model": "perturbed", "num_speculative_tokens": 2,
                             "_draft": _perturbed(model)}, num_kv_blocks=2048)
    for i in range(num_samples):
        engine.add_request(f"s{i}", prompt, SamplingParams(max_tokens=3, top_k=3, seed=i,
                                                           ignore_eos=True))
    counts: dict[tuple[int, ...], int] = {}
    while engine.has_unfinished_requests():
        for out in engine.step():
            if out.finished:
                key = tuple(out.outputs[0].token_ids)
                counts[key] = counts.get(key, 0) + 1
    stats = engine.stats
    assert stats.num_spec_drafts > num_samples // 2 and 0.2 < stats.spec_acceptance_rate < 0.95
    assert set(counts) <= set(expected)  # nothing outside the target's top-3 support
    assert _chi2(counts, expected, num_samples) < _CHI2_CRITICAL[len(expected) - 1]


def _perturbed(model):
    draft = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in draft.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.1 * param.std())
    return draft


# chi-square critical values at p = 0.001 by degrees of freedom (cells - 1, after pooling)
_CHI2_CRITICAL = {df: v for df, v in enumerate(
    [0, 10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32, 26.12, 27.88, 29.59, 31.26, 32.91,
     34.53, 36.12, 37.70, 39.25, 40.79, 42.31, 43.82, 45.31, 46.80, 48.27, 49.73, 51.18, 52.62,
     54.05])}


def _chi2(counts: dict, expected: dict, num_samples: int) -> float:
    """Pearson's statistic, cells expecting fewer than 5 samples pooled into one."""
    small = [k for k, p in expected.items() if p * num_samples < 5]
    observed = {k: counts.get(k, 0) for k in expected if k not in small}
    probs = {k: p for k, p in expected.items() if k not in small}
    if small:
        observed["pooled"] = sum(counts.get(k, 0) for k in small)
        probs["pooled"] = sum(expected[k] for k in small)
    return sum((observed[k] - num_samples * p) ** 2 / (num_samples * p) for k, p in probs.items())


def _joint_distribution(model, prompt: list[int], num_tokens: int, top_k: int) -> dict:
    """p(t1..tn) at temperature 1 and top-k, from the target's raw logprobs (no speculation)."""
    def top(prefix: list[int]) -> dict[int, float]:
        engine = create_engine(model)
        engine.add_request("p", prefix, SamplingParams(max_tokens=1, temperature=0.0,
                                                       logprobs=top_k, ignore_eos=True))
        final = [o for _ in range(4) for o in engine.step() if o.finished][0]
        best = sorted(final.outputs[0].logprobs[0].items(), key=lambda kv: kv[1].rank)[:top_k]
        weights = {t: math.exp(lp.logprob) for t, lp in best}
        return {t: w / sum(weights.values()) for t, w in weights.items()}

    joint = {(): 1.0}
    for _ in range(num_tokens):
        joint = {key + (t,): p * q for key, p in joint.items()
                 for t, q in top(prompt + list(key)).items()}
    return joint


def test_prompt_lookup_takes_the_latest_longest_match():
    from framework.engine.speculative.ngram import lookup

    tokens = [1, 2, 3, 9, 8, 2, 3, 5, 1, 2, 3, 7, 4, 2, 3]
    assert lookup(tokens, 2, 1, 3) == [7, 4]  # [2, 3] last seen before 7 (no earlier [4, 2, 3])
    assert lookup(tokens + [7], 3, 3, 3) == [4, 2, 3]  # [2, 3, 7] once before
    assert lookup(tokens + [6], 2, 1, 3) == []  # 6 never seen before
    assert lookup([5, 5, 5], 4, 1, 2) == [5]  # overlapping match: only what follows it exists
