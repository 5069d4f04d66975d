"""Sampling without a seed differs per request, also across fresh starts (the engine's default
seed is fresh entropy, not 0); a given seed reproduces exactly, in one engine and across engines.
Through `LLM.generate` on stories260K (the API: tests/app/api/test_seed_api.py)."""
from __future__ import annotations

import pytest

from app import LLM, SamplingParams
from model.loader import load_model
from tests.shared_data import STORIES_HF

pytestmark = pytest.mark.skipif(not STORIES_HF.exists(), reason="needs the stories260K model")

PROMPT = "Once upon a time"
TRIES = 4  # at temperature 1 over 16 tokens, four equal unseeded samples would be a real bug


@pytest.fixture(scope="module")
def loaded():
    return load_model(str(STORIES_HF))


def _first_sample(loaded, params: SamplingParams) -> list[int]:
    """The first answer of a freshly started engine (what a new platform says first)."""
    llm = LLM.from_loaded(loaded, num_threads=1, num_kv_blocks=64)
    (output,) = llm.generate([PROMPT], params, use_tqdm=False)
    return output.outputs[0].token_ids


def test_unseeded_first_samples_differ_across_fresh_engines(loaded):
    params = SamplingParams(temperature=1.0, max_tokens=16, ignore_eos=True)
    samples = {tuple(_first_sample(loaded, params)) for _ in range(TRIES)}
    assert len(samples) > 1


def test_a_seed_reproduces_across_fresh_engines_and_requests(loaded):
    params = SamplingParams(temperature=1.0, max_tokens=16, ignore_eos=True, seed=1234)
    first, second = _first_sample(loaded, params), _first_sample(loaded, params)
    assert first == second
    llm = LLM.from_loaded(loaded, num_threads=1, num_kv_blocks=64)
    outputs = llm.generate([PROMPT] * 3, params, use_tqdm=False)
    assert [o.outputs[0].token_ids for o in outputs] == [first] * 3
    unseeded = llm.generate([PROMPT] * TRIES, SamplingParams(temperature=1.0, max_tokens=16,
                                                             ignore_eos=True), use_tqdm=False)
    assert len({tuple(o.outputs[0].token_ids) for o in unseeded}) > 1


def test_an_engine_seed_replays_a_start(loaded):
    """Who wants a start's unseeded draws replayed sets the engine seed explicitly."""
    params = SamplingParams(temperature=1.0, max_tokens=16, ignore_eos=True)
    runs = [LLM.from_loaded(loaded, seed=7, num_threads=1, num_kv_blocks=64)
            .generate([PROMPT], params, use_tqdm=False)[0].outputs[0].token_ids for _ in range(2)]
    assert runs[0] == runs[1]
