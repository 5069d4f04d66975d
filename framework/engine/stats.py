"""Per-step and cumulative engine figures, including model FLOP and memory-bandwidth utilization.

The formulas live in `chip.utilization` (step_flops, step_bytes, mfu, mbu); this module only counts
what a scheduled step does: tokens computed, keys each query attends to, KV read and written, rows
sampled. The LM head is charged per sampled row, not per token (prefill rows that sample nothing
skip it). Utilization is measured against a `shared.DeviceProfile`; with none, MFU and MBU are 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from chip import utilization
from framework.engine.scheduler import SchedulerOutput
from shared import CausalLM, DeviceProfile, EngineStats


@dataclass(slots=True)
class StepWork:
    num_tokens: int
    flops: float
    bytes_moved: float


class StatsCollector:
    def __init__(self, model: CausalLM, dtype: torch.dtype, profile: DeviceProfile | None):
        cfg = self.config = model.config
        self.profile = profile
        self.dtype_name = str(dtype).removeprefix("torch.")
        self.element_bytes = torch.empty((), dtype=dtype).element_size()
        self.head_params = cfg.vocab_size * cfg.hidden_size
        self.body_params = utilization.decoder_matmul_params(
            cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers, cfg.num_attention_heads,
            cfg.num_key_value_heads, cfg.head_dim, cfg.vocab_size) - self.head_params
        self.weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())

    def measure(self, scheduled: SchedulerOutput) -> StepWork:
        """FLOPs and bytes of the scheduled step (call before the sequences advance)."""
        cfg = self.config
        tokens, keys, kv_read = 0, 0, 0
        for seq, n in zip(scheduled.seqs, scheduled.num_new_tokens):
            context = seq.num_computed_tokens + n
            tokens += n
            keys += utilization.attended_keys(n, context)
            kv_read += context
        if not tokens:
            return StepWork(0, 0.0, 0.0)
        sampled = len(scheduled.seqs)  # upper bound: every sequence samples at most one row
        flops = (utilization.step_flops(self.body_params, tokens, keys, cfg.num_hidden_layers,
                                        cfg.num_attention_heads, cfg.head_dim)
                 + utilization.step_flops(self.head_params, sampled))
        kv = [utilization.kv_cache_bytes(count, cfg.num_hidden_layers, cfg.num_key_value_heads,
                                         cfg.head_dim, self.element_bytes) for count in (kv_read, tokens)]
        return StepWork(tokens, flops, utilization.step_bytes(self.weight_bytes, kv[0], kv[1]))

    def record(self, stats: EngineStats, work: StepWork, step_time_s: float, num_sampled: int,
               num_rejected_drafts: int = 0) -> None:
        """Update the last-step fields and cumulative counters of `stats` in place. `num_sampled`
        counts generated tokens (kept speculative drafts included); rejected drafts were computed
        but are neither prompt nor output."""
        stats.num_steps += 1
        stats.num_batched_tokens = work.num_tokens
        stats.step_time_s = step_time_s
        stats.num_generation_tokens += num_sampled
        stats.num_prompt_tokens += max(work.num_tokens - num_sampled - num_rejected_drafts, 0)
        if (self.profile is None or step_time_s <= 0 or not work.num_tokens
                or self.profile.peak_flops_for(self.dtype_name) <= 0):
            stats.mfu = stats.mbu = 0.0
            return
        stats.mfu = utilization.mfu(work.flops, step_time_s, self.profile, self.dtype_name)
        stats.mbu = utilization.mbu(work.bytes_moved, step_time_s, self.profile)
