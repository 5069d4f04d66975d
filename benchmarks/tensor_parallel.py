"""Tensor parallelism against one process on the same model and workload, in one run.

Called by `throughput.py --tensor-parallel-size N`. The model is SmolLM2-135M's shape with 8 query
/ 2 KV heads of 64 (SmolLM2's 9 / 3 heads do not split in two), random bf16 weights saved to a
temporary directory so each rank loads only its shard. Both sides get the same cores: one process
with T threads, or N ranks with T / N threads each. Reported: W's requests/s and output tokens/s,
batch-1 decode tokens/s, the ratios TP / one process, and rank 0's time inside collectives per
engine step (which includes waiting for the slower rank).
"""
from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from pathlib import Path

import torch

from framework.engine import LLMEngine
from model.checkpoint_writer import save_checkpoint
from model.llama import LlamaForCausalLM
from shared import EngineConfig, ModelConfig, SamplingParams

logger = logging.getLogger("throughput")


def report_tensor_parallel(size: int, base_config: dict, prompts: list[list[int]], output_len: int,
                           num_threads: int, tokenizer) -> None:
    from app.serving.tensor_parallel import start_tensor_parallel
    from tests.shared_data import STORIES_HF

    config = ModelConfig(**{**base_config, "num_attention_heads": 8, "num_key_value_heads": 2,
                            "head_dim": 64})
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.bfloat16).eval()
    engine_config = EngineConfig(max_num_seqs=len(prompts), max_num_batched_tokens=1024,
                                 max_model_len=1024, num_threads=num_threads)
    params = SamplingParams(temperature=0.0, max_tokens=output_len, ignore_eos=True)
    single = _drive(LLMEngine(model, tokenizer, engine_config), prompts, params)
    single_b1 = _batch1(LLMEngine(model, tokenizer, engine_config), prompts[0], output_len)
    logger.info("TP=1 (%d threads): W' %.2f req/s, %.1f output tok/s (%d steps, %.1fs); batch-1 "
                "%.1f tok/s", num_threads, single["req_s"], single["tok_s"], single["steps"],
                single["seconds"], single_b1)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = save_checkpoint(model, config, Path(tmp) / "model", STORIES_HF,
                                    dtype="bfloat16")
        del model
        tp_config = dataclasses.replace(engine_config, num_threads=max(1, num_threads // size))
        group = start_tensor_parallel(model_dir, tp_config, size, tokenizer=tokenizer)
    try:
        engine = group.engine
        _drive(engine, [p[:64] for p in prompts[:2]], params)  # warm-up
        engine.comm.reset_timing()
        parallel = _drive(engine, prompts, params)
        comm_s, collectives = engine.comm.comm_seconds, engine.comm.num_collectives
        engine.comm.reset_timing()
        parallel_b1 = _batch1(engine, prompts[0], output_len)
        b1_steps = output_len
        b1_comm_ms = engine.comm.comm_seconds / b1_steps * 1e3
    finally:
        group.close()
    logger.info("TP=%d (%d ranks x %d threads, gloo on CPU): W' %.2f req/s, %.1f output tok/s "
                "(%d steps, %.1fs); batch-1 %.1f tok/s", size, size, tp_config.num_threads,
                parallel["req_s"], parallel["tok_s"], parallel["steps"], parallel["seconds"],
                parallel_b1)
    logger.info("TP=%d / TP=1: W' throughput %.2fx, batch-1 decode %.2fx", size,
                parallel["req_s"] / single["req_s"], parallel_b1 / single_b1)
    logger.info("communication (rank 0, inside collectives incl. waiting for the other rank): W' "
                "%.1f ms/step = %.0f%% of step time, %.0f collectives/step; batch-1 %.1f ms/step",
                comm_s / parallel["steps"] * 1e3, 100 * comm_s / parallel["seconds"],
                collectives / parallel["steps"], b1_comm_ms)


def _drive(engine: LLMEngine, prompts: list[list[int]], params: SamplingParams) -> dict:
    steps_before = engine.stats.num_steps
    started = time.perf_counter()
    for i, prompt in enumerate(prompts):
        engine.add_request(f"tp{i}-{started}", prompt, params)
    tokens = 0
    while engine.has_unfinished_requests():
        for output in engine.step():
            if output.finished:
                tokens += len(output.outputs[0].token_ids)
    seconds = time.perf_counter() - started
    return dict(seconds=seconds, req_s=len(prompts) / seconds, tok_s=tokens / seconds,
                steps=engine.stats.num_steps - steps_before)


def _batch1(engine: LLMEngine, prompt: list[int], output_len: int) -> float:
    params = SamplingParams(temperature=0.0, max_tokens=output_len, ignore_eos=True)
    return _drive(engine, [prompt[:128]], params)["tok_s"]
