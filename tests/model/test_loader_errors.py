"""Bad model directories fail with a ValueError that names the file or tensor at fault."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from model.loader import load_model
from tests.model.factories import hf_logits, our_logits, save_tiny_hf_model

WEIGHTS = "model.safetensors"


@pytest.fixture
def tiny_dir(tmp_path) -> Path:
    save_tiny_hf_model(tmp_path, "LlamaForCausalLM")
    return tmp_path


def _edit_config(directory: Path, **changes) -> None:
    path = directory / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _edit_weights(directory: Path, edit) -> None:
    tensors = load_file(directory / WEIGHTS)
    edit(tensors)
    save_file(tensors, directory / WEIGHTS, metadata={"format": "pt"})


def test_missing_directory(tmp_path):
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "nope"))):
        load_model(tmp_path / "nope")


def test_missing_config(tiny_dir):
    (tiny_dir / "config.json").unlink()
    with pytest.raises(ValueError, match=re.escape(str(tiny_dir / "config.json")) + " not found"):
        load_model(tiny_dir)


def test_malformed_config_json(tiny_dir):
    (tiny_dir / "config.json").write_text('{"architectures": ["LlamaForCausalLM"],')
    with pytest.raises(ValueError, match=r"config\.json: invalid JSON"):
        load_model(tiny_dir)


def test_unknown_architecture(tiny_dir):
    _edit_config(tiny_dir, architectures=["GPT2LMHeadModel"], model_type="gpt2")
    with pytest.raises(ValueError, match=r"config\.json: unknown architecture GPT2LMHeadModel"):
        load_model(tiny_dir)


def test_missing_weights(tiny_dir):
    (tiny_dir / WEIGHTS).unlink()
    with pytest.raises(ValueError, match=re.escape(str(tiny_dir / WEIGHTS)) + " not found"):
        load_model(tiny_dir)


def test_corrupt_safetensors_header(tiny_dir):
    (tiny_dir / WEIGHTS).write_bytes(b"\xff" * 64)
    with pytest.raises(ValueError, match=re.escape(str(tiny_dir / WEIGHTS)) + ": corrupt"):
        load_model(tiny_dir)


def test_truncated_safetensors(tiny_dir):
    data = (tiny_dir / WEIGHTS).read_bytes()
    (tiny_dir / WEIGHTS).write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=re.escape(str(tiny_dir / WEIGHTS)) + ": corrupt"):
        load_model(tiny_dir)


def test_shape_mismatch_names_tensor_and_shapes(tiny_dir):
    _edit_config(tiny_dir, intermediate_size=64)
    message = ("model.layers.0.mlp.down_proj.weight: checkpoint shape (32, 48) != "
               "model shape (32, 64)")
    with pytest.raises(ValueError, match=re.escape(message)):
        load_model(tiny_dir)


def test_missing_tensor(tiny_dir):
    _edit_weights(tiny_dir, lambda t: t.pop("model.layers.1.self_attn.k_proj.weight"))
    with pytest.raises(ValueError, match=r"missing tensor\(s\) model\.layers\.1\.self_attn\.k_"):
        load_model(tiny_dir)


def test_unexpected_tensor(tiny_dir):
    extra = {"model.layers.9.mlp.up_proj.weight": torch.ones(2)}
    _edit_weights(tiny_dir, lambda tensors: tensors.update(extra))
    with pytest.raises(ValueError, match=r"unexpected tensor 'model\.layers\.9\.mlp\.up_proj"):
        load_model(tiny_dir)


def test_sharded_index_pointing_at_missing_shard(tmp_path):
    save_tiny_hf_model(tmp_path, "LlamaForCausalLM", max_shard_size="40KB")
    shard = sorted(tmp_path.glob("model-*.safetensors"))[-1]
    shard.unlink()
    with pytest.raises(ValueError, match=re.escape(str(shard)) + " not found"):
        load_model(tmp_path)


def test_tokenizer_larger_than_model_vocab(tmp_path):
    save_tiny_hf_model(tmp_path, "LlamaForCausalLM", vocab_size=256)  # stories tokenizer has 512
    with pytest.raises(ValueError, match=r"tokenizer has token id 511.*vocab_size is 256"):
        load_model(tmp_path)


def test_missing_tokenizer(tiny_dir):
    (tiny_dir / "tokenizer.json").unlink()
    path = tiny_dir / "tokenizer.json"
    with pytest.raises(ValueError, match=re.escape(str(path)) + " not found"):
        load_model(tiny_dir)


def test_skipped_names_load(tmp_path):
    """A tied checkpoint that still carries lm_head.weight, and stray rotary inv_freq buffers."""
    reference = save_tiny_hf_model(tmp_path, "LlamaForCausalLM", tie_word_embeddings=True)

    def add_extras(tensors):
        tensors["lm_head.weight"] = torch.zeros_like(tensors["model.embed_tokens.weight"])
        tensors["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch.ones(4)

    _edit_weights(tmp_path, add_extras)
    loaded = load_model(tmp_path)
    ids = [1, 5, 9, 300]
    torch.testing.assert_close(our_logits(loaded, ids), hf_logits(reference, ids),
                               atol=1e-4, rtol=0)
