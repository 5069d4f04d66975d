"""Speculative decoding through the paths users take: `LLM(model=DIR, speculative_config=...)`
with vLLM's keys on a real checkpoint (stories260K, drafting for itself or by prompt lookup)
gives the plain engine's greedy output; `flywheel serve --speculative-config` refuses bad JSON or
unknown keys before anything starts (exit 2, the reason on stderr)."""
from __future__ import annotations

import pytest

from app.cli import main
from app.llm import LLM
from shared import SamplingParams
from tests.shared_data import STORIES_HF

pytestmark = pytest.mark.skipif(not STORIES_HF.exists(), reason="needs the stories260K model")

PROMPTS = ["Once upon a time, there was a little girl named Lily. Lily liked to play. One day,",
           "Tom had a big red ball. Tom", "The cat"]


@pytest.fixture(scope="module")
def reference():
    llm = LLM(model=str(STORIES_HF), dtype="float32")
    params = SamplingParams(temperature=0.0, max_tokens=48, ignore_eos=True)
    return [o.outputs[0].token_ids for o in llm.generate(PROMPTS, params, use_tqdm=False)]


@pytest.mark.parametrize("spec", [
    {"method": "ngram", "num_speculative_tokens": 3, "prompt_lookup_max": 3},
    {"model": str(STORIES_HF), "num_speculative_tokens": 4},
], ids=["ngram", "draft"])
def test_llm_speculative_config_keeps_greedy_output(spec, reference):
    llm = LLM(model=str(STORIES_HF), dtype="float32", speculative_config=spec)
    params = SamplingParams(temperature=0.0, max_tokens=48, ignore_eos=True)
    assert [o.outputs[0].token_ids for o in llm.generate(PROMPTS, params, use_tqdm=False)] == reference
    stats = llm.engine.stats
    assert stats.num_spec_accepted_tokens > 0
    if "model" in spec:
        assert stats.spec_acceptance_rate == 1.0


@pytest.mark.parametrize("value, message", [
    ("{bad", "Expecting property name"),
    ('{"method": "ngram"}', "num_speculative_tokens is required"),
    ('{"num_speculative_tokens": 2, "lookahead": 1}', "unknown speculative_config key(s) lookahead"),
])
def test_serve_refuses_a_bad_speculative_config(value, message, capsys, tmp_path):
    code = main(["serve", "--model", str(STORIES_HF), "--speculative-config", value,
                 "--data-dir", str(tmp_path)])
    assert code == 2
    assert message in capsys.readouterr().err
