"""Import a legacy llama2.c checkpoint (+ its sentencepiece tokenizer) as a Hugging Face directory.

The legacy ("version 0") .bin is a 7 x int32 header (dim, hidden_dim, n_layers, n_heads,
n_kv_heads, vocab_size, seq_len) followed by raw little-endian float32 tensors in a fixed order;
a negative vocab_size means an unshared classifier is appended. llama2.c rotates *adjacent* pairs
of each head, HF rotates *halves*, so wq/wk rows are permuted on the way. The output directory is
what `model.loader.load_model` reads; this module knows nothing about running the model.
"""
from __future__ import annotations

import json
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

_HEADER = struct.Struct("<7i")
_FLOAT_BYTES = 4
_VERSIONED_MAGIC = 0x616B3432  # "ak42": llama2.c's newer export formats, not the legacy one
BOS_ID, EOS_ID = 1, 2  # llama2.c's sentencepiece ids


@dataclass(frozen=True, slots=True)
class Llama2cHeader:
    dim: int
    hidden_dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int  # absolute value; `shared_classifier` keeps the sign's meaning
    seq_len: int
    shared_classifier: bool

    @property
    def head_size(self) -> int:
        return self.dim // self.n_heads

    @property
    def kv_dim(self) -> int:
        return self.n_kv_heads * self.head_size

    def tensor_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """(llama2.c name, shape) in file order."""
        n, d, h, kv, v = self.n_layers, self.dim, self.hidden_dim, self.kv_dim, self.vocab_size
        half_head = self.head_size // 2
        shapes = [("token_embedding_table", (v, d)), ("rms_att_weight", (n, d)),
                  ("wq", (n, d, d)), ("wk", (n, kv, d)), ("wv", (n, kv, d)), ("wo", (n, d, d)),
                  ("rms_ffn_weight", (n, d)), ("w1", (n, h, d)), ("w2", (n, d, h)),
                  ("w3", (n, h, d)), ("rms_final_weight", (d,)),
                  ("freq_cis_real", (self.seq_len, half_head)),
                  ("freq_cis_imag", (self.seq_len, half_head))]
        return shapes if self.shared_classifier else shapes + [("wcls", (v, d))]

    def expected_bytes(self) -> int:
        floats = sum(torch.Size(shape).numel() for _, shape in self.tensor_shapes())
        return _HEADER.size + floats * _FLOAT_BYTES


# HF per-layer name -> llama2.c stacked tensor
_LAYER_TENSORS = {
    "input_layernorm.weight": "rms_att_weight", "self_attn.q_proj.weight": "wq",
    "self_attn.k_proj.weight": "wk", "self_attn.v_proj.weight": "wv",
    "self_attn.o_proj.weight": "wo", "post_attention_layernorm.weight": "rms_ffn_weight",
    "mlp.gate_proj.weight": "w1", "mlp.down_proj.weight": "w2", "mlp.up_proj.weight": "w3",
}


def import_llama2c(model_bin: str | Path, tokenizer_model: str | Path, out_dir: str | Path) -> Path:
    """Write config.json, generation_config.json, model.safetensors, tokenizer.model,
    tokenizer.json and tokenizer_config.json into `out_dir` (created; must be empty)."""
    from safetensors.torch import save_file

    from model.sentencepiece_json import tokenizer_from_sentencepiece

    model_bin, tokenizer_model, out_dir = Path(model_bin), Path(tokenizer_model), Path(out_dir)
    header, raw = read_llama2c(model_bin)
    tokenizer = tokenizer_from_sentencepiece(tokenizer_model)
    if tokenizer.get_vocab_size() != header.vocab_size:
        raise ValueError(f"{tokenizer_model}: {tokenizer.get_vocab_size()} pieces, but {model_bin} "
                         f"has vocab_size {header.vocab_size}")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ValueError(f"{out_dir}: output directory exists and is not empty")
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(hf_state_dict(header, raw), str(out_dir / "model.safetensors"),
              metadata={"format": "pt"})
    _write_json(out_dir / "config.json", hf_config(header))
    # llama2.c ends a story by emitting BOS, so BOS also stops generation.
    _write_json(out_dir / "generation_config.json",
                {"bos_token_id": BOS_ID, "eos_token_id": [EOS_ID, BOS_ID], "pad_token_id": 0})
    _write_json(out_dir / "tokenizer_config.json",
                {"tokenizer_class": "LlamaTokenizer", "bos_token": tokenizer.id_to_token(BOS_ID),
                 "eos_token": tokenizer.id_to_token(EOS_ID), "unk_token": tokenizer.id_to_token(0),
                 "clean_up_tokenization_spaces": False, "model_max_length": header.seq_len})
    shutil.copyfile(tokenizer_model, out_dir / "tokenizer.model")
    tokenizer.save(str(out_dir / "tokenizer.json"))
    return out_dir


def read_llama2c(path: Path) -> tuple[Llama2cHeader, dict[str, torch.Tensor]]:
    """Parse and size-check a legacy llama2.c file into its header and named float32 tensors."""
    if not path.is_file():
        raise ValueError(f"{path} not found")
    data = path.read_bytes()
    header = _parse_header(data, path)
    if len(data) != header.expected_bytes():
        state = "truncated" if len(data) < header.expected_bytes() else "has trailing bytes"
        raise ValueError(f"{path}: file {state}: {len(data)} bytes, expected "
                         f"{header.expected_bytes()} for header {_HEADER.unpack_from(data)}")
    tensors, offset = {}, _HEADER.size
    for name, shape in header.tensor_shapes():
        count = torch.Size(shape).numel()
        flat = torch.frombuffer(bytearray(data[offset:offset + count * _FLOAT_BYTES]),
                                dtype=torch.float32)
        tensors[name] = flat.view(shape)
        offset += count * _FLOAT_BYTES
    return header, tensors


def hf_state_dict(header: Llama2cHeader, raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """llama2.c tensors -> HF Llama names, q/k rows permuted to the rotate-halves layout."""
    state = {"model.embed_tokens.weight": raw["token_embedding_table"],
             "model.norm.weight": raw["rms_final_weight"]}
    heads = {"wq": header.n_heads, "wk": header.n_kv_heads}
    for layer in range(header.n_layers):
        for hf_name, name in _LAYER_TENSORS.items():
            tensor = raw[name][layer]
            if name in heads:
                tensor = pairs_to_halves(tensor, heads[name])
            state[f"model.layers.{layer}.{hf_name}"] = tensor
    if not header.shared_classifier:
        state["lm_head.weight"] = raw["wcls"]
    return {name: tensor.contiguous().clone() for name, tensor in state.items()}


def pairs_to_halves(weight: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Reorder each head's output rows from (x0, y0, x1, y1, ...) to (x0, x1, ..., y0, y1, ...)."""
    rows, cols = weight.shape
    pairs = weight.view(num_heads, rows // num_heads // 2, 2, cols)  # (heads, D/2, 2, in)
    return pairs.transpose(1, 2).reshape(rows, cols)


def hf_config(header: Llama2cHeader) -> dict:
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": header.dim, "intermediate_size": header.hidden_dim,
        "num_hidden_layers": header.n_layers, "num_attention_heads": header.n_heads,
        "num_key_value_heads": header.n_kv_heads, "vocab_size": header.vocab_size,
        "max_position_embeddings": header.seq_len, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "hidden_act": "silu", "tie_word_embeddings": header.shared_classifier,
        "attention_bias": False, "bos_token_id": BOS_ID, "eos_token_id": EOS_ID,
        "pad_token_id": 0, "torch_dtype": "float32",
    }


def _parse_header(data: bytes, path: Path) -> Llama2cHeader:
    if len(data) < _HEADER.size:
        raise ValueError(f"{path}: file truncated: {len(data)} bytes, shorter than the "
                         f"{_HEADER.size}-byte llama2.c header")
    if struct.unpack_from("<I", data)[0] == _VERSIONED_MAGIC:
        raise ValueError(f"{path}: versioned llama2.c export (magic 'ak42'); only the legacy "
                         "format is supported")
    dim, hidden, layers, heads, kv_heads, vocab, seq_len = _HEADER.unpack_from(data)
    for name, value in (("dim", dim), ("hidden_dim", hidden), ("n_layers", layers),
                        ("n_heads", heads), ("n_kv_heads", kv_heads), ("seq_len", seq_len)):
        if value <= 0:
            raise ValueError(f"{path}: not a llama2.c checkpoint (header {name}={value})")
    if vocab == 0 or dim % heads or heads % kv_heads or (dim // heads) % 2:
        raise ValueError(f"{path}: inconsistent llama2.c header "
                         f"{(dim, hidden, layers, heads, kv_heads, vocab, seq_len)}")
    return Llama2cHeader(dim, hidden, layers, heads, kv_heads, abs(vocab), seq_len,
                         shared_classifier=vocab > 0)


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
