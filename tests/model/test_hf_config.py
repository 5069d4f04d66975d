"""config.json dialects -> ModelConfig, checked against what transformers reads from them."""
from __future__ import annotations

import json

import pytest

from model.hf_config import load_model_config
from model.loader import load_model
from tests.model.factories import TINY, copy_tokenizer, save_tiny_hf_model

LLAMA3_SCALING = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                  "high_freq_factor": 4.0, "original_max_position_embeddings": 16}


def _write(directory, config: dict, generation: dict | None = None):
    (directory / "config.json").write_text(json.dumps(config))
    if generation is not None:
        (directory / "generation_config.json").write_text(json.dumps(generation))
    return directory


def test_transformers4_spelling_matches_transformers(tmp_path):
    from transformers import AutoConfig

    raw = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "rope_theta": 500000.0,
           "rope_scaling": LLAMA3_SCALING, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
           **{k: v for k, v in TINY.items() if k != "eos_token_id"}, "eos_token_id": [2, 7]}
    config = load_model_config(_write(tmp_path, raw, {"eos_token_id": [7, 9]}))
    reference = AutoConfig.from_pretrained(tmp_path)
    assert config.rope_theta == reference.rope_parameters["rope_theta"] == 500000.0
    assert config.rope_scaling == {k: v for k, v in reference.rope_parameters.items()
                                   if k != "rope_theta"}
    assert config.tie_word_embeddings and config.torch_dtype == "bfloat16"
    assert config.eos_token_ids == [2, 7, 9]  # config's, then generation_config's, no repeats


@pytest.mark.parametrize("architecture, bias", [("LlamaForCausalLM", False),
                                                ("Qwen2ForCausalLM", True),
                                                ("MistralForCausalLM", False)])
def test_saved_configs(tmp_path, architecture, bias):
    reference = save_tiny_hf_model(tmp_path, architecture).config
    config = load_model_config(tmp_path)
    assert config.architecture == architecture and config.attention_bias is bias
    for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                 "num_attention_heads", "num_key_value_heads", "rms_norm_eps",
                 "max_position_embeddings"):
        assert getattr(config, name) == getattr(reference, name), name
    assert config.head_dim == (getattr(reference, "head_dim", None) or TINY["hidden_size"] // 4)
    assert config.rope_scaling is None


def test_model_type_stands_in_for_missing_architectures(tmp_path):
    raw = {"model_type": "qwen2", **TINY}
    assert load_model_config(_write(tmp_path, raw)).architecture == "Qwen2ForCausalLM"


def test_invalid_values_name_the_file(tmp_path):
    raw = {"architectures": ["LlamaForCausalLM"], **TINY, "num_key_value_heads": 3}
    with pytest.raises(ValueError, match=r"config\.json: num_attention_heads \(4\) must be a mult"):
        load_model_config(_write(tmp_path, raw))


def test_bad_generation_config_names_the_file(tmp_path):
    (tmp_path / "generation_config.json").write_text("[1, 2")
    with pytest.raises(ValueError, match=r"generation_config\.json: invalid JSON"):
        load_model_config(_write(tmp_path, {"architectures": ["LlamaForCausalLM"], **TINY}))


def test_tokenizer_eos_joins_the_stop_ids(tmp_path):
    """A chat model whose tokenizer_config eos (</s>, id 2) is not config.json's eos."""
    save_tiny_hf_model(tmp_path, "LlamaForCausalLM", eos_token_id=7)
    copy_tokenizer(tmp_path)
    loaded = load_model(tmp_path)
    assert loaded.config.eos_token_ids == loaded.tokenizer.eos_token_ids == [7, 2]
