"""An adapter written by Hugging Face `peft` (save_pretrained) serves like peft's own model: the
prompt's logprobs under transformers + peft against the engine's, and greedy tokens."""
from __future__ import annotations

import pytest
import torch

from model.loader import load_model
from shared import LoRARequest, SamplingParams
from tests.shared_data import STORIES_HF
from tests.utils.engine import create_engine

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@pytest.fixture(scope="module")
def peft_adapter(tmp_path_factory):
    """stories260K in transformers with a random rank-8 peft LoRA on every projection, saved."""
    torch.manual_seed(0)
    hf = transformers.AutoModelForCausalLM.from_pretrained(STORIES_HF, torch_dtype=torch.float32)
    config = peft.LoraConfig(r=8, lora_alpha=16, target_modules=TARGETS, lora_dropout=0.0,
                             init_lora_weights=False)  # random A and B: the adapter matters
    model = peft.get_peft_model(hf, config).eval()
    directory = tmp_path_factory.mktemp("peft") / "adapter"
    model.save_pretrained(directory)
    return model, directory


def test_engine_serves_a_peft_adapter_like_peft(peft_adapter):
    model, directory = peft_adapter
    prompt = [1, 403, 261, 263, 1417, 1058, 339, 1110, 29889, 345, 263, 2217]
    prompt = [t % model.config.vocab_size for t in prompt]
    with torch.no_grad():
        logits = model(torch.tensor([prompt])).logits[0].float()  # (T, V)
        with model.disable_adapter():
            base_logits = model(torch.tensor([prompt])).logits[0].float()
        hf_tokens = model.generate(torch.tensor([prompt]), max_new_tokens=10, do_sample=False,
                                   eos_token_id=None)[0, len(prompt):].tolist()
    want = torch.log_softmax(logits, -1)[torch.arange(len(prompt) - 1), prompt[1:]]
    loaded = load_model(STORIES_HF, dtype="float32")
    engine = create_engine(loaded.model, loaded.tokenizer, enable_lora=True, max_loras=1,
                           max_lora_rank=8)
    params = SamplingParams(max_tokens=10, temperature=0.0, ignore_eos=True, prompt_logprobs=0)
    engine.add_request("p", prompt, params,
                       lora_request=LoRARequest("peft", 1, str(directory)))
    final = None
    while engine.has_unfinished_requests():
        final = engine.step()[-1]
    got = torch.tensor([entry[token].logprob for entry, token
                        in zip(final.prompt_logprobs[1:], prompt[1:])])
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    base = torch.log_softmax(base_logits, -1)[torch.arange(len(prompt) - 1), prompt[1:]]
    assert (base - want).abs().max() > 0.1  # the adapter changes the answer
    assert final.outputs[0].token_ids == hf_tokens
