"""`throughput.py --profile`: where decode and prefill steps spend their time, against the roof.

The engine's `StepProfiler` times each part of a step (linears, attention, LM head, sampler, other
layers, and the rest: Python and scheduling). Here each part gets the work it must do at least --
FLOPs and bytes from the model's shapes and the step's batch -- and so its roofline time on the
device profile, max(FLOPs / GEMM ceiling, bytes / memory ceiling). A part's "of roofline" is that
time over its measured wall time (100% = at the ceiling); "bound" says which ceiling sets it, and
the achieved rate is shown against that ceiling. Python/scheduling has no roof: all of it is gap.
CPU time (all threads) is shown beside wall time: on a shared host the two part ways, and CPU
time, which waiting for a core does not count, is the steadier view of where the work goes.

Bytes counted: weights once per step, activations in and out of each op, KV read once per
sequence and layer, KV written, float32 logits written by the head and read by the sampler.
Small activations can stay in cache, so a memory-bound part may beat the DRAM roof (> 100%).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from chip import utilization
from framework.engine.step_profiler import StepPart, StepTiming
from shared import DeviceProfile, ModelConfig

logger = logging.getLogger("throughput")


@dataclass(slots=True)
class Work:
    flops: float = 0.0
    bytes_moved: float = 0.0

    def add(self, other: Work) -> None:
        self.flops += other.flops
        self.bytes_moved += other.bytes_moved


def part_work(step: StepTiming, cfg: ModelConfig, element_bytes: int) -> dict[StepPart, Work]:
    """The least work each part of `step` must do (see the module docstring for what counts)."""
    L, H, I, V = cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    Hq, Hk, D, e = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim, element_bytes
    T, R = sum(step.num_new_tokens), step.num_logit_rows
    linear_params = utilization.decoder_matmul_params(H, I, L, Hq, Hk, D, V) - V * H
    # per token and layer, in and out of: qkv, o, gate/up, down
    linear_activations = L * T * ((H + (Hq + 2 * Hk) * D) + (Hq * D + H) + (H + 2 * I) + (I + H))
    keys = sum(utilization.attended_keys(n, c)
               for n, c in zip(step.num_new_tokens, step.context_lens))
    kv = [utilization.kv_cache_bytes(count, L, Hk, D, e) for count in (sum(step.context_lens), T)]
    # per token and layer: two residual norms, rotary on q and k, SiLU-and-mul; final norm, lookup
    other = T * (L * (8 * H + 2 * (Hq + Hk) * D + 3 * I) + 6 * H)
    return {
        StepPart.LINEARS: Work(2.0 * linear_params * T, (linear_params + linear_activations) * e),
        StepPart.ATTENTION: Work(utilization.step_flops(0, 0, keys, L, Hq, D),
                                 kv[0] + kv[1] + 2 * L * T * Hq * D * e),
        StepPart.LM_HEAD: Work(2.0 * V * H * R, (V * H + R * H) * e + R * V * 4),
        StepPart.SAMPLER: Work(0.0, R * V * 4),
        StepPart.OTHER_LAYERS: Work(0.0, other * e),
        StepPart.PYTHON: Work(),
    }


def roofline_seconds(work: Work, profile: DeviceProfile, dtype: str) -> float:
    return utilization.roofline_seconds(work.flops, work.bytes_moved, profile, dtype)


def report_breakdown(steps: list[StepTiming], cfg: ModelConfig, element_bytes: int,
                     profile: DeviceProfile, dtype: str = "bfloat16") -> None:
    """Log one table for the decode steps and one for the prefill (and mixed) steps."""
    log_ceilings(profile, dtype)
    for name, kind in (("decode", [s for s in steps if s.is_decode]),
                       ("prefill (and mixed)", [s for s in steps if not s.is_decode])):
        if kind:
            report_kind(name, kind, cfg, element_bytes, profile, dtype)


def log_ceilings(profile: DeviceProfile, dtype: str) -> None:
    when = (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(profile.measured_at))
            if profile.measured_at else "not measured")
    logger.info("step breakdown ceilings used: %s, %s GEMM %.0f GFLOP/s, memory %.1f GB/s "
                "(device profile, %s)", profile.name, dtype, profile.peak_flops_for(dtype) / 1e9,
                profile.memory_bandwidth / 1e9, when)


def report_kind(name: str, steps: list[StepTiming], cfg: ModelConfig, element_bytes: int,
                profile: DeviceProfile, dtype: str) -> None:
    n = len(steps)
    wall = sum(s.wall_s for s in steps)
    seconds = {part: sum(s.seconds[part] for s in steps) for part in StepPart}
    cpu = {part: sum(s.cpu_seconds[part] for s in steps) for part in StepPart}
    total_cpu = sum(cpu.values()) or 1.0
    work = {part: Work() for part in StepPart}
    roof = dict.fromkeys(StepPart, 0.0)
    for step in steps:
        for part, w in part_work(step, cfg, element_bytes).items():
            work[part].add(w)
            roof[part] += roofline_seconds(w, profile, dtype)
    logger.info("step breakdown, %s: %d steps, %.0f tokens and %.0f sequences per step, "
                "%.1f ms per step", name, n, sum(sum(s.num_new_tokens) for s in steps) / n,
                sum(len(s.num_new_tokens) for s in steps) / n, 1e3 * wall / n)
    logger.info("  %-30s %9s %7s %9s %7s %9s %8s %7s  %s", "part", "ms/step", "share",
                "cpu ms", "share", "roof ms", "of roof", "bound", "achieved vs ceiling")
    for part in StepPart:
        logger.info("  %-30s %9.3f %6.1f%% %9.3f %6.1f%% %s", part.value, 1e3 * seconds[part] / n,
                    100 * seconds[part] / wall, 1e3 * cpu[part] / n, 100 * cpu[part] / total_cpu,
                    roof_columns(work[part], seconds[part], roof[part] / n, n, profile, dtype))
    total_roof = sum(roof.values())
    logger.info("  %-30s %9.3f %6.1f%% %9.3f %6.1f%% %9.3f %7.1f%%", "step", 1e3 * wall / n,
                100.0, 1e3 * total_cpu / n, 100.0, 1e3 * total_roof / n, 100 * total_roof / wall)
    gap = {part: max(0.0, seconds[part] - roof[part]) for part in StepPart}
    total_gap = sum(gap.values()) or 1.0
    logger.info("  gap to the roofline: %.1f ms per step; by part: %s",
                1e3 * (wall - total_roof) / n,
                ", ".join(f"{part.value} {100 * gap[part] / total_gap:.0f}%" for part in
                          sorted(StepPart, key=gap.get, reverse=True) if gap[part] > 0))


def roof_columns(work: Work, seconds: float, roof_per_step: float, n: int,
                 profile: DeviceProfile, dtype: str) -> str:
    if work.flops == 0 and work.bytes_moved == 0:
        return f"{'-':>9} {'-':>8} {'-':>7}  no roof: all of it is gap"
    if seconds <= 0:
        return f"{1e3 * roof_per_step:9.3f} {'-':>8} {'-':>7}  not timed"
    peak, bandwidth = profile.peak_flops_for(dtype), profile.memory_bandwidth
    compute = work.flops / peak >= work.bytes_moved / bandwidth
    fraction = roof_per_step * n / seconds
    if compute:
        achieved = f"{work.flops / seconds / 1e9:.0f} of {peak / 1e9:.0f} GFLOP/s"
    else:
        achieved = f"{work.bytes_moved / seconds / 1e9:.1f} of {bandwidth / 1e9:.1f} GB/s"
    bound = "compute" if compute else "memory"
    return f"{1e3 * roof_per_step:9.3f} {100 * fraction:7.1f}% {bound:>7}  {achieved}"
