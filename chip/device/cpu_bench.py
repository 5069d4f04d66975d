"""Microbenchmarks that turn a CPU into numbers: memory bandwidth and GEMM FLOP/s per dtype.

Both use torch at its current thread count, since that is what the engine will run with.
Each figure is the best of a few repetitions (the least disturbed by other processes); the whole
measurement stays under ~3 s.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

import torch

logger = logging.getLogger(__name__)

BANDWIDTH_BYTES = 96 * 1024**2  # per array: far beyond any L3 slice, so we measure DRAM
GEMM_DTYPES = ("float32", "bfloat16")
GEMM_SECONDS_PER_DTYPE = 0.5


def _best_seconds(fn: Callable[[], object], reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def measure_bandwidth(num_bytes: int = BANDWIDTH_BYTES, reps: int = 4) -> float:
    """Bytes/s of a STREAM-style triad a = b + s*c (reads 2 arrays, writes 1), best of `reps`.

    Also runs a plain copy and returns the higher of the two, as STREAM reports its best kernel.
    """
    n = num_bytes // 4
    b = torch.full((n,), 1.0)  # full, not rand: filling also faults every page in before timing
    c = torch.full((n,), 2.0)
    a = torch.full((n,), 0.0)
    copy_s = _best_seconds(lambda: a.copy_(b), reps)
    triad_s = _best_seconds(lambda: torch.add(b, c, alpha=3.0, out=a), reps)
    copy_bw = 2 * num_bytes / copy_s
    triad_bw = 3 * num_bytes / triad_s
    logger.debug("bandwidth: copy %.1f GB/s, triad %.1f GB/s", copy_bw / 1e9, triad_bw / 1e9)
    return max(copy_bw, triad_bw)


def measure_gemm_flops(dtype: torch.dtype, budget_s: float = GEMM_SECONDS_PER_DTYPE) -> float:
    """FLOP/s of an n x n x n matmul (2 n^3 FLOP), n = 1024, or 2048 when the CPU is fast enough."""
    n = 1024
    x = torch.randn(n, n).to(dtype)
    y = torch.randn(n, n).to(dtype)
    single_s = _best_seconds(lambda: x @ y, 2)  # the first call also warms up oneDNN/MKL
    if single_s < 0.02:  # a 2048 matmul (8x the work) still fits a few times in the budget
        n = 2048
        x = torch.randn(n, n).to(dtype)
        y = torch.randn(n, n).to(dtype)
        single_s = _best_seconds(lambda: x @ y, 1)
    reps = int(max(2, min(8, budget_s / max(single_s, 1e-6))))
    seconds = min(single_s, _best_seconds(lambda: x @ y, reps))
    return 2 * n**3 / seconds


def measure_peak_flops(dtypes: tuple[str, ...] = GEMM_DTYPES,
                       budget_s: float = GEMM_SECONDS_PER_DTYPE) -> dict[str, float]:
    return {name: measure_gemm_flops(getattr(torch, name), budget_s) for name in dtypes}
