"""Tiny random Hugging Face checkpoints and shared paths for the model-layer tests."""
from __future__ import annotations

import shutil
from pathlib import Path

import torch

from tests.shared_data import SHARED_DIR, STORIES_HF

SHARED = SHARED_DIR
STORIES_LLAMA2C = SHARED / "models" / "stories260K-llama2c"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")

# Small enough to build in milliseconds, big enough for GQA (4 query heads per 2 KV heads).
TINY = dict(vocab_size=512, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
            rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2)


def save_tiny_hf_model(directory: Path, architecture: str, seed: int = 0,
                       max_shard_size: str | None = None, **overrides):
    """Build a randomly initialised transformers model, save it (safetensors) with stories260K's
    tokenizer files into `directory`, and return the transformers model in eval mode."""
    import transformers

    config_class = getattr(transformers, architecture.replace("ForCausalLM", "Config"))
    config = config_class(**{**TINY, **overrides})
    torch.manual_seed(seed)
    model = getattr(transformers, architecture)(config).float().eval()
    _randomize(model)
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(directory, **kwargs)
    copy_tokenizer(directory)
    return model


def copy_tokenizer(directory: Path, names: tuple[str, ...] = TOKENIZER_FILES) -> None:
    for name in names:
        shutil.copyfile(STORIES_HF / name, Path(directory) / name)


def hf_logits(model, token_ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([token_ids])).logits[0].float()  # (T, V)


def our_logits(loaded, token_ids: list[int]) -> torch.Tensor:
    ids = torch.tensor(token_ids)
    with torch.no_grad():
        return loaded.model.compute_logits(loaded.model(ids, torch.arange(len(ids))))  # (T, V)


def manifest_sample() -> str:
    """The indented greedy sample in the llama2.c MANIFEST, lines joined by newlines."""
    text = (STORIES_LLAMA2C / "MANIFEST.md").read_text(encoding="utf-8")
    section = text.split("## Sample", 1)[1]
    return "\n".join(line[4:] for line in section.splitlines() if line.startswith("    "))


def _randomize(model) -> None:
    # HF initialises biases to zero and norms to one; random values make every tensor count.
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.copy_(1.0 + 0.2 * torch.randn_like(param))
            else:
                param.normal_(std=0.2)
