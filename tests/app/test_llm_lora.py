"""LLM(model=DIR, enable_lora=True).generate(..., lora_request=...) in vLLM's shape: one adapter
for all prompts or one (or None) per prompt, equal to the merged model."""
from __future__ import annotations

import pytest

from app import LLM, SamplingParams
from model.loader import load_model
from shared import LoRARequest
from tests.shared_data import STORIES_HF
from tests.utils.lora import merged_copy, write_random_adapter

pytestmark = pytest.mark.skipif(not STORIES_HF.exists(), reason="needs the stories260K model")
PROMPTS = ["Once upon a time", "The cat sat", "One day, Lily"]
GREEDY = SamplingParams(max_tokens=12, temperature=0.0)


def _texts(outputs) -> list[str]:
    return [out.outputs[0].text for out in outputs]


def test_generate_takes_one_lora_request_per_prompt(tmp_path):
    loaded = load_model(STORIES_HF, dtype="float32")
    weights = write_random_adapter(loaded.model, tmp_path / "a", 8, 16.0, seed=1, std=0.3)
    lora = LoRARequest("a", 1, str(tmp_path / "a"))
    llm = LLM(str(STORIES_HF), dtype="float32", enable_lora=True, max_loras=2, max_lora_rank=8)
    mixed = _texts(llm.generate(PROMPTS, GREEDY, use_tqdm=False, lora_request=[None, lora, lora]))
    all_lora = _texts(llm.generate(PROMPTS, GREEDY, use_tqdm=False, lora_request=lora))
    loaded.model = merged_copy(loaded.model, weights)
    merged = _texts(LLM.from_loaded(loaded).generate(PROMPTS, GREEDY, use_tqdm=False))
    base = _texts(LLM(str(STORIES_HF), dtype="float32").generate(PROMPTS, GREEDY, use_tqdm=False))
    assert all_lora == merged and mixed == [base[0], *merged[1:]]
    assert merged != base
    with pytest.raises(ValueError, match="one .or None. per prompt"):
        llm.generate(PROMPTS, GREEDY, lora_request=[lora])
