"""Decode-sized linears three ways, A/B/C in one process: bf16 with the prepacked oneDNN weight (the
default CPU path), int8 through torch's packed int8 kernel (the old int8 path), and int8 through
the C kernel of chip/native/int8_gemv.c (the int8 path now).

    .venv/bin/python benchmarks/int8_gemv_ab.py [--rounds 7] [--threads 1,2] [--rows 1,4,8,16]

SmolLM2-135M shapes (N x K): q/o 576x576, k/v 192x576, gate/up 1536x576, down 576x1536 and the
tied head 49152x576. Each variant cycles through distinct copies of the weight making up
--working-set-mb of bf16 (int8: half that), as a decode step walks 30 layers, so the weights come
from memory rather than cache. A round times one pass over the copies for each variant in turn
(load from other processes hits all alike); prints the median microseconds per call over the
rounds, the int8 paths' speedups over bf16 and the kernel's effective GB/s of int8 weights.

Measured on the 2-core AMX box (other sessions' tests running beside), 1 thread, median us per
call, bf16 oneDNN / old int8 / new kernel (new over bf16):

    rows            1                       4                       8
    576x576    178 / 108 /   57 (3.1x)  174 / 149 /   78 (2.2x)  175 /   201 /   90 (1.9x)
    192x576     97 /  53 /   32 (3.0x)   92 /  60 /   35 (2.7x)   95 /    80 /   43 (2.2x)
    1536x576   367 / 233 /  115 (3.2x)  367 / 306 /  134 (2.7x)  355 /   471 /  168 (2.1x)
    576x1536   396 / 254 /  117 (3.4x)  234 / 276 /  126 (1.9x)  233 /   428 /  132 (1.8x)
    49152x576 10603/7134 / 3256 (3.3x) 10082/9002 / 3501 (2.9x) 10848/ 17527 / 5014 (2.2x)

At 16 rows a one-weight-row-per-block version of the kernel reached only 0.58-0.98x bf16, so the
op stops at 8 rows. With 2 threads the kernel was 1.4-4x bf16 where torch's threads ran normally;
in many cells torch's two OpenMP threads (bf16 and old int8) took 1-8 ms per call while another
process held a core, which the kernel's claimed chunks ride out.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chip.ops import int8_matmul_native as native  # noqa: E402
from chip.ops.int8_matmul import int8_matmul_packed, quantize_int8  # noqa: E402
from chip.ops.linear import linear_cpu, pack_linear_weight  # noqa: E402

SHAPES = [(576, 576), (192, 576), (1536, 576), (576, 1536), (49152, 576)]


def weights(n: int, k: int, copies: int, gen: torch.Generator) -> list[tuple]:
    """`copies` distinct (bf16 weight, packed bf16, int8, scales)."""
    out = []
    for _ in range(copies):
        w = (torch.randn(n, k, generator=gen) * 0.02).bfloat16()
        w_int8, scales = quantize_int8(w)
        out.append((w, pack_linear_weight(w), w_int8, scales))
    return out


def pass_seconds(fn, x: torch.Tensor, copies: list[tuple]) -> float:
    start = time.perf_counter()
    for w in copies:
        fn(x, w)
    return time.perf_counter() - start


VARIANTS = {
    "bf16 oneDNN": lambda x, w: linear_cpu(x, w[0], None, w[1]),
    "int8 old": lambda x, w: int8_matmul_packed(x, w[2], w[3]),
    "int8 new": lambda x, w: native.int8_gemv(x, w[2], w[3]),
    "int8 dpbf16": lambda x, w: native.int8_gemv(x, w[2], w[3], variant=1),
}


def measure(n: int, k: int, rows: int, copies: list[tuple], rounds: int,
            variants: list[str]) -> dict[str, float]:
    """Median microseconds per call of each of `variants` that takes these rows."""
    x = torch.randn(rows, k).bfloat16()
    names = [name for name in variants if name in ("bf16 oneDNN", "int8 old")
             or native.supports(x, *copies[0][2:])]
    times: dict[str, list[float]] = {name: [] for name in names}
    for name in names:  # warm-up: oneDNN primitive creation, the C build, the pool's threads
        pass_seconds(VARIANTS[name], x, copies[:2])
    for _ in range(rounds):
        for name in names:
            times[name].append(pass_seconds(VARIANTS[name], x, copies) / len(copies) * 1e6)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rows", default="1,4,8,16")
    parser.add_argument("--variants", default="bf16 oneDNN,int8 old,int8 new",
                        help=f"comma-separated, the first is the baseline; of: {', '.join(VARIANTS)}")
    parser.add_argument("--working-set-mb", type=float, default=384.0,
                        help="bf16 megabytes of distinct weights cycled through per shape")
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(0)
    print(f"median us per call over {args.rounds} rounds; x = speedup over bf16 oneDNN; "
          f"GB/s = int8 weight bytes / time of the new kernel")
    for n, k in SHAPES:
        copies = weights(n, k, max(2, int(args.working_set_mb * 2**20 // (2 * n * k))), gen)
        for threads in [int(t) for t in args.threads.split(",")]:
            torch.set_num_threads(threads)
            for rows in [int(r) for r in args.rows.split(",")]:
                us = measure(n, k, rows, copies, args.rounds, args.variants.split(","))
                base = next(iter(us.values()))
                cells = [f"{name} {t:8.1f} us ({base / t:4.2f}x)" for name, t in us.items()]
                rate = f"  {n * k / us['int8 new'] / 1e3:5.1f} GB/s" if "int8 new" in us else ""
                print(f"{n:5d}x{k:<4d} {len(copies):3d} copies, {threads} thr, {rows:2d} rows: "
                      + " | ".join(cells) + rate, flush=True)
        del copies


if __name__ == "__main__":
    main()
