"""llama2.c import: the real stories260K reproduces Karpathy's published greedy sample, and a random
untied model written in llama2.c layout by this test matches transformers after import."""
from __future__ import annotations

import struct

import pytest
import torch

from app.commands.generate import stream_generate, stream_text
from model.llama2c import import_llama2c
from model.loader import load_model
from shared import SamplingParams
from tests.model.factories import (STORIES_HF, STORIES_LLAMA2C, hf_logits, manifest_sample,
                                   our_logits)

ATOL = 1e-4
BIN, TOKENIZER = STORIES_LLAMA2C / "stories260K.bin", STORIES_LLAMA2C / "tok512.model"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # 256 tiny forward passes: on a shared 2-core machine, thread hand-offs cost 10x the math.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    return import_llama2c(BIN, TOKENIZER, tmp_path_factory.mktemp("stories260K"))


def test_greedy_from_bos_reproduces_published_sample(imported):
    loaded = load_model(imported)
    prompt = loaded.tokenizer.encode("")
    assert prompt == [1]
    ids = stream_generate(loaded, prompt, SamplingParams(temperature=0.0, max_tokens=256))
    text = "".join(stream_text(loaded.tokenizer, prompt, ids))
    assert text == manifest_sample()


def test_imported_model_matches_transformers_on_the_hf_conversion(imported):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loaded = load_model(imported)
    text = "Once upon a time, Lily went to the park."
    ids = loaded.tokenizer.encode(text)
    for directory in (STORIES_HF, imported):  # and transformers reads our tokenizer files
        assert ids == AutoTokenizer.from_pretrained(directory).encode(text)
    for directory in (STORIES_HF, imported):  # transformers reads our config.json too
        reference = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
        torch.testing.assert_close(our_logits(loaded, ids), hf_logits(reference, ids),
                                   atol=ATOL, rtol=0)
    assert loaded.config.eos_token_ids == [2, 1] and loaded.config.tie_word_embeddings


def _halves_to_pairs(weight: torch.Tensor, num_heads: int) -> torch.Tensor:
    # llama2.c row 2j of a head is HF row j, row 2j+1 is HF row j + head_dim/2.
    head_dim = weight.shape[0] // num_heads
    rows = [h * head_dim + i // 2 + (i % 2) * (head_dim // 2)
            for h in range(num_heads) for i in range(head_dim)]
    return weight[rows]


def _write_llama2c(path, model, seq_len: int) -> None:
    """Serialise a transformers Llama into the legacy llama2.c layout, classifier unshared."""
    cfg, sd = model.config, model.state_dict()
    layers = range(cfg.num_hidden_layers)

    def stack(name, heads=None):
        tensors = [sd[f"model.layers.{i}.{name}"] for i in layers]
        return torch.stack([_halves_to_pairs(t, heads) if heads else t for t in tensors])

    header = struct.pack("<7i", cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers,
                         cfg.num_attention_heads, cfg.num_key_value_heads, -cfg.vocab_size, seq_len)
    half_head = cfg.hidden_size // cfg.num_attention_heads // 2
    tensors = [sd["model.embed_tokens.weight"], stack("input_layernorm.weight"),
               stack("self_attn.q_proj.weight", cfg.num_attention_heads),
               stack("self_attn.k_proj.weight", cfg.num_key_value_heads),
               stack("self_attn.v_proj.weight"), stack("self_attn.o_proj.weight"),
               stack("post_attention_layernorm.weight"), stack("mlp.gate_proj.weight"),
               stack("mlp.down_proj.weight"), stack("mlp.up_proj.weight"), sd["model.norm.weight"],
               torch.zeros(seq_len, half_head), torch.zeros(seq_len, half_head),
               sd["lm_head.weight"]]
    path.write_bytes(header + b"".join(t.float().contiguous().numpy().tobytes() for t in tensors))


def test_untied_classifier_model_matches_transformers(tmp_path):
    from tests.model.factories import save_tiny_hf_model

    reference = save_tiny_hf_model(tmp_path / "hf", "LlamaForCausalLM", head_dim=None)
    _write_llama2c(tmp_path / "model.bin", reference, seq_len=64)
    out = import_llama2c(tmp_path / "model.bin", TOKENIZER, tmp_path / "out")
    loaded = load_model(out)
    assert not loaded.config.tie_word_embeddings and loaded.config.max_position_embeddings == 64
    ids = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 17, 42, 500, 3]
    torch.testing.assert_close(our_logits(loaded, ids), hf_logits(reference, ids),
                               atol=ATOL, rtol=0)


@pytest.mark.parametrize("size", [10, 28, 1000, 1056540 - 4])
def test_truncated_file(tmp_path, size):
    (tmp_path / "cut.bin").write_bytes(BIN.read_bytes()[:size])
    with pytest.raises(ValueError, match=r"cut\.bin: file truncated"):
        import_llama2c(tmp_path / "cut.bin", TOKENIZER, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_trailing_bytes(tmp_path):
    (tmp_path / "long.bin").write_bytes(BIN.read_bytes() + b"\0" * 8)
    with pytest.raises(ValueError, match=r"long\.bin: file has trailing bytes"):
        import_llama2c(tmp_path / "long.bin", TOKENIZER, tmp_path / "out")


def test_versioned_export_is_refused(tmp_path):
    (tmp_path / "v1.bin").write_bytes(struct.pack("<I", 0x616B3432) + BIN.read_bytes()[4:])
    with pytest.raises(ValueError, match="only the legacy format"):
        import_llama2c(tmp_path / "v1.bin", TOKENIZER, tmp_path / "out")


def test_tokenizer_size_must_match_vocab(tmp_path):
    data = bytearray(BIN.read_bytes())
    struct.pack_into("<i", data, 20, 256)  # vocab_size field
    (tmp_path / "small.bin").write_bytes(bytes(data[: 28 + (len(data) - 28) - 256 * 64 * 4]))
    message = r"tok512\.model: 512 pieces, but .*small\.bin has vocab_size 256"
    with pytest.raises(ValueError, match=message):
        import_llama2c(tmp_path / "small.bin", TOKENIZER, tmp_path / "out")


def test_non_empty_output_directory(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        import_llama2c(BIN, TOKENIZER, tmp_path / "out")
