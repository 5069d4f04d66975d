"""The trainer's own LoRA, saved as an adapter (TrainResult.lora in PEFT's layout) and served on
the untouched base model, generates what the trainer's merged model generates."""
from __future__ import annotations

import copy
import json

import torch

from framework.lora import save_lora_adapter
from framework.train import TrainConfig, train
from framework.train.data import SFTExample
from shared import LoRARequest, SamplingParams
from tests.utils.engine import create_engine, create_model, greedy_batch


def _examples(count: int) -> list[SFTExample]:
    gen = torch.Generator().manual_seed(0)
    out = []
    for _ in range(count):
        prompt = torch.randint(0, 256, (5,), generator=gen).tolist()
        answer = [prompt[0]] * 6  # learnable: repeat the first token
        out.append(SFTExample(prompt + answer, [0] * 5 + [1] * 6))
    return out


def test_a_trained_adapter_serves_like_the_merged_model(tmp_path):
    base = create_model(seed=8)
    trained = copy.deepcopy(base)
    result = train(trained, _examples(16),
                   TrainConfig(learning_rate=3e-2, max_steps=6, lora_rank=4, lora_alpha=8.0))
    assert result.lora is not None and result.lora.scaling == 2.0
    assert len(result.lora.layers) == 2 * 7  # every projection of both layers
    directory = save_lora_adapter(tmp_path / "trained", result.lora)
    config = json.loads((directory / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"], config["peft_type"]) == (4, 8.0, "LORA")
    prompts = [ex.input_ids[:5] for ex in _examples(4)]
    engine = create_engine(base, enable_lora=True, max_loras=1, max_lora_rank=4)
    lora = LoRARequest("trained", 1, str(directory))
    for i, prompt in enumerate(prompts):
        engine.add_request(f"p{i}", prompt, _greedy(), lora_request=lora)
    served = {}
    while engine.has_unfinished_requests():
        for out in engine.step():
            if out.finished:
                served[out.request_id] = out.outputs[0].token_ids
    merged = greedy_batch(create_engine(trained.eval()), prompts, max_tokens=8)
    assert [served[f"p{i}"] for i in range(len(prompts))] == merged
    assert greedy_batch(create_engine(base), prompts, max_tokens=8) != merged  # training mattered


def _greedy() -> SamplingParams:
    return SamplingParams(max_tokens=8, temperature=0.0, ignore_eos=True)
