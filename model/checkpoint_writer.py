"""Save a model as a Hugging Face directory that `model.loader.load_model` (and transformers) read.

Writes config.json, generation_config.json, model.safetensors and copies the tokenizer files from
a source directory. The directory appears atomically: it is written beside the target and renamed.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from torch import nn

from shared import ModelConfig

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model",
                   "special_tokens_map.json", "chat_template.jinja")
_MODEL_TYPES = {"LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2",
                "MistralForCausalLM": "mistral"}


def hf_config_dict(config: ModelConfig, dtype: str) -> dict:
    """config.json contents for `config` in the Hugging Face layout."""
    eos = config.eos_token_ids
    return {
        "architectures": [config.architecture],
        "model_type": _MODEL_TYPES[config.architecture],
        "vocab_size": config.vocab_size, "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.num_hidden_layers,
        "num_attention_heads": config.num_attention_heads,
        "num_key_value_heads": config.num_key_value_heads, "head_dim": config.head_dim,
        "max_position_embeddings": config.max_position_embeddings,
        "rms_norm_eps": config.rms_norm_eps, "rope_theta": config.rope_theta,
        "rope_scaling": config.rope_scaling, "tie_word_embeddings": config.tie_word_embeddings,
        "attention_bias": config.attention_bias, "hidden_act": config.hidden_act,
        "bos_token_id": config.bos_token_id, "eos_token_id": eos[0] if len(eos) == 1 else eos,
        "pad_token_id": config.pad_token_id, "torch_dtype": dtype,
    }


def save_checkpoint(model: nn.Module, config: ModelConfig, out_dir: str | Path,
                    tokenizer_dir: str | Path | None = None, dtype: str = "float32",
                    extra_files: dict[str, str] | None = None) -> Path:
    """Write `model` (parameters by name) + config (+ tokenizer files) to `out_dir`; replace it."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16,
                   "float16": torch.float16}[dtype]
    tensors = {name: param.detach().to("cpu", torch_dtype).contiguous()
               for name, param in model.named_parameters()}
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        _write_json(tmp / "config.json", hf_config_dict(config, dtype))
        generation = {"eos_token_id": config.eos_token_ids, "bos_token_id": config.bos_token_id}
        _write_json(tmp / "generation_config.json", generation)
        if tokenizer_dir is not None:
            copy_tokenizer_files(tokenizer_dir, tmp)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
        for path in tmp.iterdir():
            path.chmod(0o644)
        tmp.chmod(0o755)  # mkdtemp makes it private; a model directory is meant to be shared
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def copy_tokenizer_files(src: str | Path, dst: str | Path) -> list[str]:
    src, dst = Path(src), Path(dst)
    copied = [name for name in TOKENIZER_FILES if (src / name).is_file()]
    if not copied:
        raise ValueError(f"{src}: no tokenizer files ({', '.join(TOKENIZER_FILES)})")
    for name in copied:
        shutil.copyfile(src / name, dst / name)
    return copied


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _replace_dir(tmp: Path, out_dir: Path) -> None:
    # A directory cannot be os.replace'd over a non-empty one: move the old aside first.
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old.{os.getpid()}")
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
