"""`load_model(dir)`: the one entry point that turns a Hugging Face model directory into a ready
model, tokenizer and configs. The engine and the server call this; they never read files themselves.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from framework.distributed.communicator import Communicator
from framework.distributed.sharding import ShardSpec
from framework.layers import RotaryEmbedding
from model.hf_config import load_generation_config, load_model_config
from model.llama import LlamaForCausalLM
from model.tensor_parallel import apply_tensor_parallel
from model.tokenizer import Tokenizer
from model.weights import NAME_MAPPINGS, checkpoint_files, load_weights
from shared import ModelConfig

logger = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16,
           "fp16": torch.float16, "half": torch.float16, "bfloat16": torch.bfloat16,
           "bf16": torch.bfloat16}


@dataclass(slots=True)
class LoadedModel:
    """Everything needed to run and talk to one model."""

    model: LlamaForCausalLM  # in eval mode, on the requested device and dtype
    tokenizer: Tokenizer
    config: ModelConfig
    generation_config: dict = field(default_factory=dict)  # generation_config.json as read
    chat_template: str | None = None


def resolve_dtype(name: str) -> torch.dtype:
    """'float32' / 'bf16' / 'torch.float16' ... -> torch.dtype; ValueError on anything else."""
    key = str(name).removeprefix("torch.")
    if key not in _DTYPES:
        raise ValueError(f"unsupported dtype {name!r}; choose one of {', '.join(_DTYPES)}")
    return _DTYPES[key]


def load_model(model_dir: str | Path, dtype: str | None = None, device: str = "cpu",
               comm: Communicator | None = None) -> LoadedModel:
    """Load config, weights and tokenizer from `model_dir`. dtype None keeps the checkpoint's
    torch_dtype. Raises ValueError naming the file or tensor when anything does not fit.

    With `comm` (tensor parallelism) the model is rank `comm.rank`'s shard, and only that shard
    is read from the checkpoint."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ValueError(f"{model_dir}: model directory not found")
    config = load_model_config(model_dir)
    torch_dtype = resolve_dtype(dtype or config.torch_dtype)
    files = checkpoint_files(model_dir)
    tokenizer = Tokenizer.from_dir(model_dir, config.eos_token_ids)
    # tokenizer_config.json's eos (a chat model's end-of-turn) ends generation too.
    config = dataclasses.replace(config, eos_token_ids=tokenizer.eos_token_ids)
    check_tokenizer_fits(tokenizer, config, model_dir)
    model, shards = _build(config, torch_dtype, device, comm)
    load_weights(model, files, NAME_MAPPINGS[config.architecture], config.tie_word_embeddings,
                 shards)
    model.eval()
    logger.info("loaded %s (%s, %d params) from %s", config.architecture, torch_dtype,
                config.num_params, model_dir)
    return LoadedModel(model, tokenizer, config, load_generation_config(model_dir),
                       tokenizer.chat_template)


def check_tokenizer_fits(tokenizer: Tokenizer, config: ModelConfig, model_dir: Path) -> None:
    """Every id the tokenizer can produce must index the model's embedding."""
    if tokenizer.max_token_id >= config.vocab_size:
        raise ValueError(f"{model_dir}: tokenizer has token id {tokenizer.max_token_id}, but "
                         f"config.json vocab_size is {config.vocab_size}")


def _build(config: ModelConfig, dtype: torch.dtype, device: str, comm: Communicator | None
           ) -> tuple[LlamaForCausalLM, dict[str, ShardSpec] | None]:
    """The model with uninitialised parameters (load_weights fills them all) in `dtype` on
    `device`, and with `comm` the specs of its split parameters. Built on the meta device
    first, so no time goes into random init that the checkpoint overwrites anyway, and a
    tensor-parallel rank never allocates more than its shard."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device("meta"):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    shards = apply_tensor_parallel(model, comm) if comm is not None else None
    # model.to_empty(device) without its torch.empty_like, whose Python meta path imports sympy
    model._apply(lambda t: torch.empty(t.shape, dtype=t.dtype, device=device))
    _compute_buffers(model, config, device)
    return model, shards


def _compute_buffers(model: LlamaForCausalLM, config: ModelConfig, device: str) -> None:
    # Buffers are computed, not loaded. Every layer's rotary table is the same, so one float32
    # table is computed and shared (a per-layer copy costs GBs for 128K-context models).
    with torch.device(device):
        rotary = RotaryEmbedding(config.head_dim, config.max_position_embeddings,
                                 config.rope_theta, config.rope_scaling)
    computed = set()
    for module_name, module in model.named_modules():
        if isinstance(module, RotaryEmbedding):
            for name, buffer in rotary.named_buffers():
                setattr(module, name, buffer)
                computed.add(f"{module_name}.{name}")
    left = {name for name, _ in model.named_buffers(remove_duplicate=False)} - computed
    assert not left, f"the loader does not know how to compute buffers {sorted(left)}"
