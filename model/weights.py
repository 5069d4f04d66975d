"""Copy safetensors checkpoints (single file or sharded) into a model by Hugging Face tensor name.

Renames are data (`NAME_MAPPINGS`), not code: each architecture lists regex renames and names to
skip. The loader is one loop: open each file, map each name, check its shape, copy. It knows nothing
about configs or tokenizers; every error names the file or tensor at fault.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from framework.distributed.sharding import ShardSpec

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


@dataclass(frozen=True, slots=True)
class NameMapping:
    """How a checkpoint's tensor names map onto the model's parameter names."""

    renames: tuple[tuple[str, str], ...] = ()  # (regex, replacement), applied in order
    ignored: tuple[str, ...] = (r"(^|\.)rotary_emb\.inv_freq$",)  # regexes of names to skip
    tied_head: str = "lm_head.weight"  # skipped when the model ties its head to the embedding


# Our decoder uses HF's names, so HF Llama, Qwen2 and Mistral checkpoints need no renames.
NAME_MAPPINGS: dict[str, NameMapping] = {
    "LlamaForCausalLM": NameMapping(),
    "Qwen2ForCausalLM": NameMapping(),
    "MistralForCausalLM": NameMapping(),
}


def checkpoint_files(model_dir: str | Path) -> list[Path]:
    """The safetensors files of a model directory: the single file, or every shard of the index."""
    model_dir = Path(model_dir)
    index = model_dir / INDEX_FILE
    if index.is_file():
        return _shards_from_index(index)
    single = model_dir / SINGLE_FILE
    if single.is_file():
        return [single]
    raise ValueError(f"{single} not found (nor {INDEX_FILE}); only safetensors checkpoints load")


def load_weights(model: nn.Module, files: list[Path], mapping: NameMapping, tied: bool,
                 shards: Mapping[str, ShardSpec] | None = None) -> None:
    """Fill every parameter of `model` from `files`. ValueError on missing/unexpected/misshapen.

    `shards` (tensor parallelism: parameter name -> this rank's slice) reads only that slice of
    those tensors from the file; the rest of the tensor is never materialized."""
    params = dict(model.named_parameters())
    loaded: set[str] = set()
    for path, name, handle in _iter_tensors(files):
        target = map_name(name, mapping, tied)
        if target is None:
            continue
        if target not in params:
            raise ValueError(f"{path}: unexpected tensor {name!r} (the model has no {target!r})")
        param = params[target]
        tensor = _read(handle, name, (shards or {}).get(target), path)
        if tuple(tensor.shape) != tuple(param.shape):
            raise ValueError(f"{path}: {name}: checkpoint shape {tuple(tensor.shape)} != "
                             f"model shape {tuple(param.shape)}")
        with torch.no_grad():
            param.copy_(tensor)
        loaded.add(target)
    missing = sorted(set(params) - loaded)
    if missing:
        shown = ", ".join(missing[:5])
        if len(missing) > 5:
            shown += f" and {len(missing) - 5} more"
        raise ValueError(f"{files[0].parent}: checkpoint is missing tensor(s) {shown}")


def map_name(name: str, mapping: NameMapping, tied: bool) -> str | None:
    """The model parameter a checkpoint tensor fills, or None when it is to be skipped."""
    if any(re.search(pattern, name) for pattern in mapping.ignored):
        return None
    if tied and name == mapping.tied_head:
        return None
    for pattern, replacement in mapping.renames:
        name = re.sub(pattern, replacement, name)
    return name


def _shards_from_index(index: Path) -> list[Path]:
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{index}: not a valid safetensors index ({e!r})") from e
    shards = [index.parent / name for name in dict.fromkeys(weight_map.values())]
    for shard in shards:
        if not shard.is_file():
            raise ValueError(f"{shard} not found (listed in {index})")
    return shards


def _read(handle, name: str, spec: ShardSpec | None, path: Path) -> torch.Tensor:
    """The whole tensor, or only the slice `spec` of it."""
    try:
        if spec is None:
            return handle.get_tensor(name)
        source = handle.get_slice(name)
        full_size = source.get_shape()[spec.dim]
        if full_size != spec.full_size:
            raise ValueError(f"{path}: {name}: checkpoint has {full_size} along dim {spec.dim}, "
                             f"the model {spec.full_size}")
        return spec.take(source)
    except ValueError:
        raise
    except Exception as e:  # SafetensorError and friends: a truncated or garbled file
        raise ValueError(f"{path}: corrupt safetensors file reading {name} ({e})") from e


def _iter_tensors(files: list[Path]) -> Iterator[tuple[Path, str, object]]:
    """(file, name, open safetensors handle) for every tensor of every file; a corrupt file
    raises ValueError."""
    from safetensors import safe_open

    for path in files:
        try:
            with safe_open(str(path), framework="pt") as handle:
                for name in handle.keys():
                    yield path, name, handle
        except Exception as e:  # SafetensorError and friends: a truncated or garbled file
            raise ValueError(f"{path}: corrupt safetensors file ({e})") from e
