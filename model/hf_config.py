"""Read a Hugging Face model directory's config.json (+ generation_config.json) into a ModelConfig.

Knows the config.json dialects of Llama, Qwen2 and Mistral, in both the transformers 4 spelling
(`rope_theta` + `rope_scaling`) and the transformers 5 one (`rope_parameters`). Knows nothing about
weights or tokenizers.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from shared import ModelConfig

logger = logging.getLogger(__name__)

# model_type -> architecture, for configs that omit "architectures".
_ARCHITECTURE_BY_MODEL_TYPE = {
    "llama": "LlamaForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "mistral": "MistralForCausalLM",
}
# Per-architecture facts that config.json does not spell out.
_ARCHITECTURE_DEFAULTS = {
    "LlamaForCausalLM": {},
    "Qwen2ForCausalLM": {"attention_bias": True},  # Qwen2 always has q/k/v bias
    "MistralForCausalLM": {},
}
# ModelConfig field -> config.json key, copied when present and not null.
_PLAIN_FIELDS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                 "num_attention_heads", "num_key_value_heads", "head_dim",
                 "max_position_embeddings", "rms_norm_eps", "tie_word_embeddings",
                 "attention_bias", "hidden_act", "bos_token_id", "pad_token_id")


def read_json(path: Path) -> dict:
    """Parse a JSON object file; ValueError naming the file when it is missing or malformed."""
    if not path.is_file():
        raise ValueError(f"{path} not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: invalid JSON ({e})") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def load_generation_config(model_dir: str | Path) -> dict:
    """generation_config.json as a dict, or {} when the directory has none."""
    path = Path(model_dir) / "generation_config.json"
    return read_json(path) if path.exists() else {}


def load_model_config(model_dir: str | Path) -> ModelConfig:
    """Build the ModelConfig for a HF model directory. ValueError names the offending file."""
    path = Path(model_dir) / "config.json"
    raw = read_json(path)
    architecture = _architecture(raw, path)
    fields = dict(_ARCHITECTURE_DEFAULTS[architecture])
    fields.update({name: raw[name] for name in _PLAIN_FIELDS if raw.get(name) is not None})
    if raw.get("mlp_bias"):
        raise ValueError(f"{path}: mlp_bias=true is not supported")
    fields["rope_theta"], fields["rope_scaling"] = _rope(raw)
    fields["eos_token_ids"] = _eos_token_ids(raw, load_generation_config(model_dir))
    fields["torch_dtype"] = str(raw.get("torch_dtype") or raw.get("dtype") or "float32")
    _warn_sliding_window(raw, path)
    try:
        return ModelConfig(architecture=architecture, **fields)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: {e}") from e


def _architecture(raw: dict, path: Path) -> str:
    names = raw.get("architectures") or []
    if not names and raw.get("model_type") in _ARCHITECTURE_BY_MODEL_TYPE:
        names = [_ARCHITECTURE_BY_MODEL_TYPE[raw["model_type"]]]
    for name in names:
        if name in _ARCHITECTURE_DEFAULTS:
            return name
    found = ", ".join(map(str, names)) or f"model_type={raw.get('model_type')!r}"
    raise ValueError(f"{path}: unknown architecture {found}; supported: "
                     f"{', '.join(_ARCHITECTURE_DEFAULTS)}")


def _rope(raw: dict) -> tuple[float, dict | None]:
    """(theta, scaling) from `rope_parameters` (transformers 5) or `rope_theta` + `rope_scaling`."""
    params = raw.get("rope_parameters")
    if isinstance(params, dict):
        theta = float(params.get("rope_theta", raw.get("rope_theta", 10000.0)))
        scaling = {k: v for k, v in params.items() if k != "rope_theta"}
    else:
        theta = float(raw.get("rope_theta", 10000.0))
        scaling = dict(raw.get("rope_scaling") or {})
    kind = scaling.get("rope_type") or scaling.get("type")
    return theta, (scaling if kind not in (None, "default") else None)


def _eos_token_ids(raw: dict, generation: dict) -> list[int]:
    """Every id that ends generation: config.json's eos plus generation_config.json's, in order."""
    ids: list[int] = []
    for value in (raw.get("eos_token_id"), generation.get("eos_token_id")):
        for token_id in (value if isinstance(value, list) else [value]):
            if isinstance(token_id, int) and token_id not in ids:
                ids.append(token_id)
    return ids


def _warn_sliding_window(raw: dict, path: Path) -> None:
    window = raw.get("sliding_window")
    uses_window = raw.get("use_sliding_window", raw.get("model_type") == "mistral")
    if uses_window and window and window < raw.get("max_position_embeddings", 0):
        logger.warning("%s: sliding_window=%s is not implemented; attention is full-context, "
                       "exact only for sequences up to %s tokens", path, window, window)
