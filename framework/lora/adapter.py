"""LoRA adapters on disk in PEFT's layout, read and written.

A directory holds `adapter_config.json` (`r`, `lora_alpha`, `target_modules`, optional
`use_rslora`) and `adapter_model.safetensors` with, per adapted layer,
`base_model.model.<layer>.lora_A.weight` (r, in) and `...lora_B.weight` (out, r), `<layer>` being
the layer's name in the model (`model.layers.0.self_attn.q_proj`). That is what `peft`'s
`save_pretrained` writes and what `save_lora_adapter` writes from the trainer's
`TrainResult.lora`, so adapters from either serve alike. The effective scaling is lora_alpha / r
(lora_alpha / sqrt(r) with rsLoRA).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

CONFIG_FILE, WEIGHTS_FILE = "adapter_config.json", "adapter_model.safetensors"
_PREFIX = "base_model.model."


@dataclass(slots=True)
class LoRAWeights:
    rank: int
    scaling: float  # multiplies B A x
    layers: dict[str, tuple[torch.Tensor, torch.Tensor]]  # layer name -> (A (r, in), B (out, r))


def load_lora_adapter(path: str | Path) -> LoRAWeights:
    """Read an adapter directory; ValueError (naming the file) when it is missing or malformed."""
    from safetensors.torch import load_file

    directory = Path(path)
    try:
        config = json.loads((directory / CONFIG_FILE).read_text())
        tensors = load_file(str(directory / WEIGHTS_FILE))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read a LoRA adapter at {directory}: {e}") from e
    rank, alpha = config.get("r"), config.get("lora_alpha", config.get("r"))
    if not isinstance(rank, int) or rank < 1 or not isinstance(alpha, (int, float)):
        raise ValueError(f"{directory / CONFIG_FILE}: 'r' must be a positive int and 'lora_alpha' "
                         f"a number, got r={rank!r}, lora_alpha={alpha!r}")
    scaling = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
    return LoRAWeights(rank, float(scaling), _pair_up(tensors, rank, directory))


def _pair_up(tensors: dict[str, torch.Tensor], rank: int,
             directory: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    layers: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for key, lora_a in tensors.items():
        if not key.endswith(".lora_A.weight"):
            continue
        name = key.removesuffix(".lora_A.weight").removeprefix(_PREFIX)
        lora_b = tensors.get(key.replace(".lora_A.", ".lora_B."))
        if lora_b is None or lora_a.dim() != 2 or lora_b.dim() != 2 \
                or lora_a.shape[0] != rank or lora_b.shape[1] != rank:
            raise ValueError(f"{directory / WEIGHTS_FILE}: {name} needs lora_A (r={rank}, in) and "
                             f"lora_B (out, r={rank})")
        layers[name] = (lora_a, lora_b)
    if not layers:
        raise ValueError(f"{directory / WEIGHTS_FILE} holds no lora_A/lora_B weights")
    return layers


def save_lora_adapter(path: str | Path, weights: LoRAWeights, alpha: float | None = None) -> Path:
    """Write `weights` as a PEFT adapter directory; lora_alpha is `alpha`, by default the one
    that gives back `weights.scaling` (scaling * rank)."""
    alpha = weights.scaling * weights.rank if alpha is None else alpha
    from safetensors.torch import save_file

    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, (lora_a, lora_b) in weights.layers.items():
        tensors[f"{_PREFIX}{name}.lora_A.weight"] = lora_a.detach().contiguous().cpu()
        tensors[f"{_PREFIX}{name}.lora_B.weight"] = lora_b.detach().contiguous().cpu()
    save_file(tensors, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})
    targets = sorted({name.rsplit(".", 1)[-1] for name in weights.layers})
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": weights.rank,
              "lora_alpha": alpha, "target_modules": targets, "lora_dropout": 0.0,
              "bias": "none", "fan_in_fan_out": False, "use_rslora": False}
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    return directory
