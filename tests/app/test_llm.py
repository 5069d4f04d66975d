"""vLLM-style offline API: `LLM(model=DIR).generate(...)` against transformers' greedy generate."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from app import LLM, SamplingParams
from tests.shared_data import STORIES_HF

ROOT = Path(__file__).resolve().parents[2]
STORIES = STORIES_HF

pytestmark = pytest.mark.skipif(not STORIES.exists(), reason="needs the stories260K model")


@pytest.fixture(scope="module")
def llm():
    return LLM(str(STORIES), dtype="float32", num_threads=1, max_num_batched_tokens=64)


def test_greedy_matches_transformers_generate(llm):
    transformers = pytest.importorskip("transformers")
    reference = transformers.LlamaForCausalLM.from_pretrained(STORIES, torch_dtype=torch.float32).eval()
    prompts = ["Once upon a time", "The dog", "Lily wanted to"]
    outputs = llm.generate(prompts, SamplingParams(temperature=0, max_tokens=24), use_tqdm=False)
    tokenizer = llm.get_tokenizer()
    for prompt, output in zip(prompts, outputs):
        ids = tokenizer.encode(prompt)
        assert output.prompt == prompt and output.prompt_token_ids == ids
        with torch.no_grad():
            expected = reference.generate(torch.tensor([ids]), max_new_tokens=24, do_sample=False)[0, len(ids):]
        completion = output.outputs[0]
        assert completion.token_ids == expected.tolist()
        assert completion.finish_reason in ("stop", "length")
        assert completion.text == tokenizer.decode(ids + completion.token_ids)[len(tokenizer.decode(ids)):]


def test_outputs_in_input_order_with_per_prompt_params(llm):
    prompts = [[1, 400, 401], "Tom", "A big"]
    params = [SamplingParams(max_tokens=3, ignore_eos=True), SamplingParams(n=2, seed=5, max_tokens=5),
              SamplingParams(temperature=0, max_tokens=4, logprobs=2, ignore_eos=True)]
    outputs = llm.generate(prompts, params, use_tqdm=False)
    assert [o.prompt_token_ids[:3] for o in outputs][0] == [1, 400, 401]
    assert [o.prompt for o in outputs] == [None, "Tom", "A big"]
    assert [len(o.outputs) for o in outputs] == [1, 2, 1]
    assert len(outputs[0].outputs[0].token_ids) == 3
    assert [c.index for c in outputs[1].outputs] == [0, 1]
    assert len(outputs[2].outputs[0].logprobs) == 4 and all(o.finished for o in outputs)


def test_single_string_and_default_params(llm):
    (output,) = llm.generate("Once", use_tqdm=False)
    assert len(output.outputs[0].token_ids) <= 16  # SamplingParams() default max_tokens


def test_bad_options_and_inputs_raise_value_error(llm):
    with pytest.raises(ValueError, match="unknown engine option"):
        LLM(str(STORIES), not_an_option=1)
    with pytest.raises(ValueError, match="sampling params"):
        llm.generate(["a", "b"], [SamplingParams()], use_tqdm=False)
    with pytest.raises(ValueError, match="context"):
        llm.generate(["ok", "word " * 600], use_tqdm=False)
    assert not llm.engine.has_unfinished_requests()  # the valid prompt was not queued either


def test_from_loaded_shares_a_loaded_model():
    from model.loader import load_model

    llm = LLM.from_loaded(load_model(STORIES), num_kv_blocks=32, block_size=16)
    (output,) = llm.generate(["Once upon"], SamplingParams(temperature=0, max_tokens=5), use_tqdm=False)
    assert output.outputs[0].token_ids


def test_import_app_stays_light():
    code = "import sys, app; assert 'torch' not in sys.modules, 'torch imported'; print(app.SamplingParams)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_warmup_at_construction_leaves_no_trace_in_outputs_or_stats(llm):
    warmed = LLM(str(STORIES), dtype="float32", num_threads=1, max_num_batched_tokens=64,
                 warmup=True)
    stats = warmed.engine.stats
    assert (stats.num_steps, stats.num_finished, stats.num_prefix_cache_hits) == (0, 0, 0)
    params = SamplingParams(temperature=0, max_tokens=12, ignore_eos=True)
    prompts = ["Once upon a time", "The dog"]
    assert ([o.outputs[0].token_ids for o in warmed.generate(prompts, params, use_tqdm=False)]
            == [o.outputs[0].token_ids for o in llm.generate(prompts, params, use_tqdm=False)])
