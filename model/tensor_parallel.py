"""Split a built Llama-family decoder into this rank's tensor-parallel shard, in place.

The plan (Megatron's, as gpt-fast's `apply_tp` writes it): q/k/v and gate/up are column-parallel
(each rank keeps its heads / its part of the intermediate dim), o and down are row-parallel with
one all-reduce each, so a decoder layer syncs twice. The embedding and the LM head are split
over the vocabulary. With fewer KV heads than ranks (GQA), each KV head is replicated on the ranks
whose query heads read it. Norms and rotary tables are replicated.

Works on a model with real weights (they are sliced) or on one built on the meta device (the
loader then reads each rank's slice from the checkpoint with the returned specs). This module
decides what is split how; the collectives live in `framework.distributed`, behind a
`Communicator`: no model file imports torch.distributed.
"""
from __future__ import annotations

from framework.distributed.communicator import Communicator
from framework.distributed.layers import (RowParallelLinear, VocabParallelEmbedding,
                                          VocabParallelHead, shard_column_)
from framework.distributed.sharding import ShardSpec, even_split, head_split
from model.llama import LlamaAttention, LlamaForCausalLM, LlamaMLP
from shared import ModelConfig


def check_tensor_parallel(config: ModelConfig, world_size: int) -> None:
    """ValueError when `config` cannot be split over `world_size` ranks."""
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    problems = []
    if heads % world_size:
        problems.append(f"num_attention_heads={heads} is not divisible by it")
    if kv_heads % world_size and world_size % kv_heads:
        problems.append(f"num_key_value_heads={kv_heads} neither divides nor is divisible by it")
    if config.intermediate_size % world_size:
        problems.append(f"intermediate_size={config.intermediate_size} is not divisible by it")
    if problems:
        raise ValueError(f"tensor_parallel_size={world_size} does not fit this model: "
                         + "; ".join(problems))


def apply_tensor_parallel(model: LlamaForCausalLM, comm: Communicator) -> dict[str, ShardSpec]:
    """Make `model` rank `comm.rank`'s shard. Returns the spec of every split parameter by name
    (parameters not listed are whole on every rank)."""
    check_tensor_parallel(model.config, comm.world_size)
    specs: dict[str, ShardSpec] = {}
    for i, layer in enumerate(model.model.layers):
        prefix = f"model.layers.{i}"
        specs.update(_split_attention(layer.self_attn, comm, f"{prefix}.self_attn"))
        specs.update(_split_mlp(layer.mlp, comm, f"{prefix}.mlp"))
    backbone, cfg = model.model, model.config
    spec = even_split(cfg.vocab_size, comm.rank, comm.world_size, dim=0)
    backbone.embed_tokens = VocabParallelEmbedding(backbone.embed_tokens, spec, comm)
    specs["model.embed_tokens.weight"] = spec
    if model.lm_head is not None:
        model.lm_head = VocabParallelHead(model.lm_head, spec, comm)
        specs["lm_head.weight"] = spec
    return specs


def _split_attention(attn: LlamaAttention, comm: Communicator, prefix: str) -> dict[str, ShardSpec]:
    rank, world, head_dim = comm.rank, comm.world_size, attn.head_dim
    q_spec = head_split(attn.num_heads, head_dim, rank, world)
    kv_spec = head_split(attn.num_kv_heads, head_dim, rank, world)
    specs = {}
    for name, spec in (("q_proj", q_spec), ("k_proj", kv_spec), ("v_proj", kv_spec)):
        shard_column_(getattr(attn, name), spec)
        specs[f"{prefix}.{name}.weight"] = spec
        if getattr(attn, name).bias is not None:
            specs[f"{prefix}.{name}.bias"] = spec
    o_spec = ShardSpec(1, q_spec.start, q_spec.stop, q_spec.size, q_spec.full_size)
    attn.o_proj = RowParallelLinear(attn.o_proj, o_spec, comm)
    specs[f"{prefix}.o_proj.weight"] = o_spec
    # The forward reads head counts from these: from now on they are this rank's.
    attn.num_heads, attn.num_kv_heads = q_spec.size // head_dim, kv_spec.size // head_dim
    attn.attn.num_heads, attn.attn.num_kv_heads = attn.num_heads, attn.num_kv_heads
    return specs


def _split_mlp(mlp: LlamaMLP, comm: Communicator, prefix: str) -> dict[str, ShardSpec]:
    column = even_split(mlp.gate_proj.out_features, comm.rank, comm.world_size, dim=0)
    shard_column_(mlp.gate_proj, column)
    shard_column_(mlp.up_proj, column)
    row = ShardSpec(1, column.start, column.stop, column.size, column.full_size)
    mlp.down_proj = RowParallelLinear(mlp.down_proj, row, comm)
    return {f"{prefix}.gate_proj.weight": column, f"{prefix}.up_proj.weight": column,
            f"{prefix}.down_proj.weight": row}
