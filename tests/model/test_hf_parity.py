"""Logits parity with transformers on random tiny Llama / Qwen2 / Mistral checkpoints and on the
real stories260K, all float32 on CPU."""
from __future__ import annotations

import json

import pytest
import torch

from model.loader import load_model
from tests.model.factories import STORIES_HF, hf_logits, our_logits, save_tiny_hf_model

ATOL = 1e-4  # float32; observed max |diff| is ~1e-6 on these logits of magnitude ~1-10
PROMPT = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 7, 99, 300, 45, 12, 511, 0, 2, 260,
          17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36]

CASES = {
    "llama-gqa": ("LlamaForCausalLM", {}),
    "llama-tied": ("LlamaForCausalLM", {"tie_word_embeddings": True}),
    "llama3-rope-scaling": ("LlamaForCausalLM", {
        "rope_theta": 500000.0,
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 16}}),
    "qwen2-qkv-bias-tied": ("Qwen2ForCausalLM", {"tie_word_embeddings": True}),
    "mistral-head-dim": ("MistralForCausalLM", {"head_dim": 16, "sliding_window": None}),
}


@pytest.mark.parametrize("case", CASES)
def test_logits_match_transformers(tmp_path, case):
    architecture, overrides = CASES[case]
    reference = save_tiny_hf_model(tmp_path, architecture, **overrides)
    loaded = load_model(tmp_path)
    assert loaded.config.architecture == architecture
    assert not loaded.model.training
    expected = hf_logits(reference, PROMPT)
    assert expected.abs().max() > 1.0  # logits large enough for ATOL to mean something
    torch.testing.assert_close(our_logits(loaded, PROMPT), expected, atol=ATOL, rtol=0)


def test_qwen2_config_turns_on_qkv_bias(tmp_path):
    save_tiny_hf_model(tmp_path, "Qwen2ForCausalLM")
    loaded = load_model(tmp_path)
    assert loaded.config.attention_bias
    assert loaded.model.model.layers[0].self_attn.q_proj.bias.abs().sum() > 0


def test_sharded_checkpoint_matches_transformers(tmp_path):
    reference = save_tiny_hf_model(tmp_path, "LlamaForCausalLM", max_shard_size="40KB")
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 2
    assert not (tmp_path / "model.safetensors").exists()
    loaded = load_model(tmp_path)
    torch.testing.assert_close(our_logits(loaded, PROMPT), hf_logits(reference, PROMPT),
                               atol=ATOL, rtol=0)


def test_stories260k_matches_transformers():
    from transformers import AutoModelForCausalLM

    reference = AutoModelForCausalLM.from_pretrained(STORIES_HF, dtype=torch.float32).eval()
    loaded = load_model(STORIES_HF)
    ids = loaded.tokenizer.encode("Once upon a time, there was a little girl named Lily.")
    torch.testing.assert_close(our_logits(loaded, ids), hf_logits(reference, ids),
                               atol=ATOL, rtol=0)
    assert loaded.config.eos_token_ids == [2, 1]
    assert loaded.tokenizer.eos_token_ids == [2, 1]


def test_dtype_argument_overrides_checkpoint_dtype():
    loaded = load_model(STORIES_HF, dtype="bfloat16")
    assert {p.dtype for p in loaded.model.parameters()} == {torch.bfloat16}
    full = load_model(STORIES_HF)
    ids = full.tokenizer.encode("Once upon a time")
    # bf16 keeps ~3 significant digits: same argmax, logits within a loose bound
    low, high = our_logits(loaded, ids), our_logits(full, ids)
    assert torch.equal(low.argmax(-1), high.argmax(-1))
    assert (low - high).abs().max() < 0.5
