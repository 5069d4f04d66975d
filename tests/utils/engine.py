"""Factories for engine tests: tiny random Llamas, engines, schedulers on fake pools, requests."""
from __future__ import annotations

import random

import torch

from framework.engine import LLMEngine
from framework.engine.block_manager import BlockManager
from framework.engine.scheduler import Scheduler
from framework.engine.sequence import Sequence
from model.llama import LlamaForCausalLM
from shared import EngineConfig, ModelConfig, SamplingParams
from tests.utils.byte_tokenizer import ByteTokenizer


def tiny_model_config(**overrides) -> ModelConfig:
    fields = dict(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                  bos_token_id=256, eos_token_ids=[257], tie_word_embeddings=True)
    fields.update(overrides)
    return ModelConfig(**fields)


def create_model(seed: int = 0, dtype: torch.dtype = torch.float32, **overrides) -> LlamaForCausalLM:
    """A random-weight Llama (std 0.5 weights so logits are far from uniform)."""
    torch.manual_seed(seed)
    model = LlamaForCausalLM(tiny_model_config(**overrides))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" not in name:
                param.normal_(0.0, 0.5 if "embed" in name else 0.15)
    return model.to(dtype).eval()


def create_engine(model=None, tokenizer=None, **config) -> LLMEngine:
    config.setdefault("num_kv_blocks", 256)
    config.setdefault("block_size", 4)
    return LLMEngine(model or create_model(), tokenizer or ByteTokenizer(), EngineConfig(**config))


def create_scheduler(num_blocks: int = 64, block_size: int = 4, enable_prefix_caching: bool = True,
                     **config) -> Scheduler:
    """A scheduler over a fake pool (bookkeeping only, no tensors)."""
    cfg = EngineConfig(block_size=block_size, num_kv_blocks=num_blocks,
                       enable_prefix_caching=enable_prefix_caching, **config)
    return Scheduler(cfg, BlockManager(num_blocks, block_size, enable_prefix_caching))


def create_requests(num_requests: int, prompt_len: int = 10, max_tokens: int = 8, seed: int = 0,
                    same_prefix_len: int = 0, priority: int = 0, **params) -> list[Sequence]:
    rng = random.Random(seed)
    prefix = [rng.randrange(256) for _ in range(same_prefix_len)]
    sampling = SamplingParams(max_tokens=max_tokens, **params)
    return [Sequence(f"req-{i}", prefix + [rng.randrange(256) for _ in range(prompt_len - same_prefix_len)],
                     sampling, priority=priority) for i in range(num_requests)]


def run_alone(model, prompt: list[int], params: SamplingParams, **config) -> list[list[int]]:
    """Reference: the request served by a fresh engine on its own; token ids per sample."""
    engine = create_engine(model, **config)
    engine.add_request("alone", prompt, params)
    final = None
    while engine.has_unfinished_requests():
        for out in engine.step():
            final = out
    return [c.token_ids for c in final.outputs]


def greedy_batch(engine: LLMEngine, prompts: list[list[int]], max_tokens: int) -> list[list[int]]:
    """Greedy token ids of `prompts` served together by `engine`, in prompt order."""
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True)
    for i, prompt in enumerate(prompts):
        engine.add_request(f"greedy-{i}", prompt, params)
    done = {}
    while engine.has_unfinished_requests():
        for out in engine.step():
            if out.finished:
                done[out.request_id] = out.outputs[0].token_ids
    return [done[f"greedy-{i}"] for i in range(len(prompts))]


def complete_step(scheduler: Scheduler, out, next_token: int = 0) -> None:
    """What the engine does after a forward pass, without a model: advance, cache, sample."""
    for seq, num_new in zip(out.seqs, out.num_new_tokens):
        seq.num_computed_tokens += num_new
        scheduler.block_manager.commit(seq)
        if seq.num_pending_tokens == 0 and seq.fork_into == 1:
            seq.append_token(next_token)
