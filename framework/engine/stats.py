"""Per-step and cumulative engine figures, including model FLOP and memory-bandwidth utilization.

FLOPs of a step ~ 2 * (non-embedding params) * tokens + 2 * hidden * vocab * sampled rows
+ attention (4 * layers * heads * head_dim per query-key pair). Bytes ~ every weight read once
+ the KV cache each sequence reads + the KV written. Utilization is measured against a
`shared.DeviceProfile`; with none, MFU and MBU are reported as 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from framework.engine.scheduler import SchedulerOutput
from shared import CausalLM, DeviceProfile, EngineStats


@dataclass(slots=True)
class StepWork:
    num_tokens: int
    flops: float
    bytes_moved: float


class StatsCollector:
    def __init__(self, model: CausalLM, dtype: torch.dtype, profile: DeviceProfile | None):
        cfg = model.config
        self.profile = profile
        self.dtype_name = str(dtype).removeprefix("torch.")
        element = torch.empty((), dtype=dtype).element_size()
        embed = cfg.vocab_size * cfg.hidden_size
        self.matmul_params = cfg.num_params - embed * (1 if cfg.tie_word_embeddings else 2)
        self.head_flops_per_row = 2 * embed
        self.weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        self.kv_bytes_per_token = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * cfg.head_dim * element
        self.attn_flops_per_pair = 4 * cfg.num_hidden_layers * cfg.num_attention_heads * cfg.head_dim

    def measure(self, scheduled: SchedulerOutput) -> StepWork:
        """FLOPs and bytes of the scheduled step (call before the sequences advance)."""
        tokens, pairs, kv_read = 0, 0, 0
        for seq, n in zip(scheduled.seqs, scheduled.num_new_tokens):
            past = seq.num_computed_tokens
            tokens += n
            pairs += n * past + n * (n + 1) // 2  # each new query sees the past and its own prefix
            kv_read += past + n
        sampled = len(scheduled.seqs)  # upper bound: every sequence samples at most one row
        flops = 2 * self.matmul_params * tokens + self.head_flops_per_row * sampled + self.attn_flops_per_pair * pairs
        bytes_moved = self.weight_bytes + self.kv_bytes_per_token * (kv_read + tokens) if tokens else 0
        return StepWork(tokens, float(flops), float(bytes_moved))

    def record(self, stats: EngineStats, work: StepWork, step_time_s: float, num_sampled: int) -> None:
        """Update the last-step fields and cumulative counters of `stats` in place."""
        stats.num_steps += 1
        stats.num_batched_tokens = work.num_tokens
        stats.step_time_s = step_time_s
        stats.num_generation_tokens += num_sampled
        stats.num_prompt_tokens += max(work.num_tokens - num_sampled, 0)
        if self.profile is None or step_time_s <= 0 or not work.num_tokens:
            stats.mfu = stats.mbu = 0.0
            return
        peak = self.profile.peak_flops_for(self.dtype_name)
        stats.mfu = work.flops / step_time_s / peak if peak else 0.0
        stats.mbu = work.bytes_moved / step_time_s / self.profile.memory_bandwidth
