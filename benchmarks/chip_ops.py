"""CPU fast paths against their torch references, timed in the same process.

    .venv/bin/python benchmarks/chip_ops.py [--rounds 15] [--threads N] [--clock thread]

On a machine shared with other busy processes, multi-threaded timings mostly measure OpenMP threads
waiting for each other; `--threads 1 --clock thread` gives stable numbers there.

Each case checks the fast path's output against the reference first, then times both interleaved
(round-robin, best of `rounds`) so that load from other processes hits both alike, and prints the
reference time and the speedup ratio (reference time / fast path time; > 1 means the fast path pays).
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chip.ops import paged_attention_native  # noqa: E402
from chip.ops.activation import silu_and_mul, silu_and_mul_cpu  # noqa: E402
from chip.ops.attention import paged_attention_cpu  # noqa: E402
from chip.ops.int8_matmul import int8_matmul, int8_matmul_cpu, quantize_int8  # noqa: E402
from chip.ops.norm import rms_norm, rms_norm_cpu  # noqa: E402
from chip.ops.sampling import filter_logits, filter_logits_fast  # noqa: E402


@dataclass(slots=True)
class Case:
    name: str
    reference: Callable
    fast: Callable
    args: tuple


def best_seconds(fns: list[Callable], args: tuple, rounds: int, clock: Callable[[], float],
                 min_batch_s: float = 0.01) -> list[float]:
    """Best per-call seconds of each fn, timed round-robin; each timing repeats a call >= min_batch_s."""
    reps = []
    for fn in fns:
        start = clock()
        fn(*args)  # warm-up, and a first estimate of the per-call time
        reps.append(max(1, int(min_batch_s / max(clock() - start, 1e-7))))
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            start = clock()
            for _ in range(reps[i]):
                fn(*args)
            best[i] = min(best[i], (clock() - start) / reps[i])
    return best


def _agreement(a, b) -> str:
    """'exact' when bit-identical, else the largest difference relative to the reference's range."""
    pairs = list(zip(a, b)) if isinstance(a, tuple) else [(a, b)]
    if all(torch.equal(x, y) for x, y in pairs):
        return "exact"
    worst = max(float((x.float() - y.float()).abs().max() / y.float().abs().max()) for x, y in pairs)
    return f"rel {worst:.1e}"


def torch_paged_attention(*args):
    """chip's CPU paged attention with the C kernel turned off: gather + batched matmuls / SDPA."""
    supports = paged_attention_native.supports
    paged_attention_native.supports = lambda q, k_cache: False
    try:
        return paged_attention_cpu(*args)
    finally:
        paged_attention_native.supports = supports


def paged_attention_cases(gen: torch.Generator) -> list[Case]:
    """SmolLM2-135M attention shapes (9 query heads, 3 kv heads, head_dim 64, blocks of 16) with
    scattered blocks; the reference column is the torch path the C kernel replaced."""
    if not paged_attention_native.supports(torch.zeros(1, 1, 1).bfloat16(),
                                           torch.zeros(1, 1, 1, 1).bfloat16()):
        return []
    out = []
    k_cache = torch.randn(4096, 16, 3, 64, generator=gen).bfloat16()
    v_cache = torch.randn(4096, 16, 3, 64, generator=gen).bfloat16()
    for name, q_lens, ctx_lens in (
            ("decode 64 seqs, ctx 64-640", [1] * 64,
             torch.randint(64, 641, (64,), generator=gen).tolist()),
            ("prefill 288 tokens", [288], [288]),
            ("prefill 512 tokens", [512], [512])):
        width = max(-(-c // 16) for c in ctx_lens)
        tables = torch.randperm(4096, generator=gen)[:len(ctx_lens) * width].view(len(ctx_lens), width)
        cu = torch.tensor([0, *torch.tensor(q_lens).cumsum(0).tolist()])
        q = torch.randn(sum(q_lens), 9, 64, generator=gen).bfloat16()
        out.append(Case(f"paged_attention bf16 {name}", torch_paged_attention,
                        paged_attention_native.paged_attention,
                        (q, k_cache, v_cache, tables, cu, torch.tensor(ctx_lens), 0.125)))
    return out


def cases() -> list[Case]:
    gen = torch.Generator().manual_seed(0)
    out = paged_attention_cases(gen)
    for dtype in (torch.bfloat16, torch.float32):
        short = "bf16" if dtype == torch.bfloat16 else "f32"
        for rows, hidden in ((1, 4096), (16, 4096), (512, 4096)):
            x = torch.randn(rows, hidden, generator=gen).to(dtype)
            w = torch.randn(hidden, generator=gen).to(dtype)
            r = torch.randn(rows, hidden, generator=gen).to(dtype)
            out.append(Case(f"rms_norm {short} {rows}x{hidden}", rms_norm, rms_norm_cpu, (x, w, 1e-6)))
            out.append(Case(f"rms_norm+residual {short} {rows}x{hidden}", rms_norm, rms_norm_cpu,
                            (x, w, 1e-6, r)))
        for rows, inter in ((1, 11008), (16, 11008), (512, 11008)):
            x = torch.randn(rows, 2 * inter, generator=gen).to(dtype)
            out.append(Case(f"silu_and_mul {short} {rows}x{inter}", silu_and_mul, silu_and_mul_cpu, (x,)))
    w_int8, scales = quantize_int8(torch.randn(4096, 4096, generator=gen))
    for rows in (1, 16, 64):
        x = torch.randn(rows, 4096, generator=gen).bfloat16()
        out.append(Case(f"int8_matmul bf16 {rows}x4096 @ 4096x4096", int8_matmul, int8_matmul_cpu,
                        (x, w_int8, scales)))
    batch, vocab = 32, 32000
    logits = torch.randn(batch, vocab, generator=gen) * 3
    long = torch.long
    sampling = {
        "all disabled": (torch.zeros(batch, dtype=long), torch.ones(batch), torch.zeros(batch)),
        "top_k=50": (torch.full((batch,), 50), torch.ones(batch), torch.zeros(batch)),
        "top_k=50 top_p=0.9": (torch.full((batch,), 50), torch.full((batch,), 0.9), torch.zeros(batch)),
        "min_p=0.05": (torch.zeros(batch, dtype=long), torch.ones(batch), torch.full((batch,), 0.05)),
        "top_p=0.9": (torch.zeros(batch, dtype=long), torch.full((batch,), 0.9), torch.zeros(batch)),
        "top_p=0.9 peaked": (torch.zeros(batch, dtype=long), torch.full((batch,), 0.9),
                             torch.zeros(batch)),
        "mixed rows": (torch.tensor([0, 50] * (batch // 2)),
                       torch.tensor([1.0, 0.9, 0.5, 1.0] * (batch // 4)),
                       torch.tensor([0.0, 0.0, 0.0, 0.1] * (batch // 4))),
    }
    # randn * 3 puts ~1400 tokens in a 0.9 nucleus; a trained LM's next-token logits are peakier.
    peaked = torch.randn(batch, vocab, generator=gen) * 8
    for name, params in sampling.items():
        rows = peaked if "peaked" in name else logits
        out.append(Case(f"filter_logits {batch}x{vocab} {name}", filter_logits, filter_logits_fast,
                        (rows, *params)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--filter", default="", help="only cases whose name contains this")
    parser.add_argument("--clock", choices=("wall", "thread"), default="wall",
                        help="'thread': CPU time of this thread, which ignores time spent descheduled "
                             "on a busy machine (meaningful with --threads 1 only)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clock == "thread" and torch.get_num_threads() != 1:
        parser.error("--clock thread needs --threads 1 (other threads' work would not be counted)")
    clock = time.perf_counter if args.clock == "wall" else time.thread_time
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.clock} clock, "
          f"best of {args.rounds} rounds")
    print(f"{'case':48s} {'reference':>12s} {'fast':>12s} {'ratio':>7s}  agreement")
    for case in cases():
        if args.filter not in case.name:
            continue
        agreement = _agreement(case.fast(*case.args), case.reference(*case.args))
        ref_s, fast_s = best_seconds([case.reference, case.fast], case.args, args.rounds, clock)
        print(f"{case.name:48s} {ref_s * 1e6:10.1f}us {fast_s * 1e6:10.1f}us "
              f"{ref_s / fast_s:6.2f}x  {agreement}")


if __name__ == "__main__":
    main()
