"""Returned logprobs equal transformers' log_softmax for the same prefix (stories260K)."""

import pytest
import torch

from framework.engine import LLMEngine
from shared import EngineConfig, SamplingParams
from tests.shared_data import STORIES_HF

STORIES = STORIES_HF
ATOL = 1e-4  # float32 end to end; paged attention vs transformers' eager attention

pytestmark = pytest.mark.skipif(not STORIES.exists(), reason="needs the stories260K model")


def test_logprobs_match_transformers():
    transformers = pytest.importorskip("transformers")
    from model.loader import load_model

    loaded = load_model(STORIES, dtype="float32")
    engine = LLMEngine(loaded.model, loaded.tokenizer, EngineConfig(num_kv_blocks=64, block_size=8))
    prompts = ["Once upon a time", "The little bird", "Tom and Sue went to the park and"]
    for i, prompt in enumerate(prompts):
        engine.add_request(f"r{i}", prompt, SamplingParams(temperature=0.8, seed=i, max_tokens=12,
                                                           logprobs=3, ignore_eos=True))
    outputs = {}
    while engine.has_unfinished_requests():
        outputs.update({o.request_id: o for o in engine.step() if o.finished})

    reference = transformers.LlamaForCausalLM.from_pretrained(STORIES, torch_dtype=torch.float32).eval()
    for i in range(len(prompts)):
        out = outputs[f"r{i}"]
        completion = out.outputs[0]
        ids = out.prompt_token_ids + completion.token_ids
        with torch.no_grad():
            logits = reference(torch.tensor([ids])).logits[0].float()
        expected = logits.log_softmax(-1)[len(out.prompt_token_ids) - 1:-1]  # (generated, V)
        assert len(completion.logprobs) == len(completion.token_ids) == 12
        for step, (token, entry) in enumerate(zip(completion.token_ids, completion.logprobs)):
            row = expected[step]
            assert token in entry
            assert entry[token].logprob == pytest.approx(row[token].item(), abs=ATOL)
            assert entry[token].rank == int((row > row[token]).sum()) + 1
            top_values, top_ids = row.topk(3)
            for rank, (value, token_id) in enumerate(zip(top_values.tolist(), top_ids.tolist()), 1):
                assert entry[token_id].logprob == pytest.approx(value, abs=ATOL)
                assert entry[token_id].rank == rank
