"""The C paged-attention kernel's variants against each other, A/B/C in one process.

    .venv/bin/python benchmarks/paged_attention_ab.py [--rounds 9] [--threads 1]
    .venv/bin/python benchmarks/paged_attention_ab.py --decode --variants 2,3

SmolLM2-135M shapes (9 query heads, 3 kv heads, head_dim 64, bf16, blocks of 16, scattered).
All variants live in the same shared object (`paged_attention_variant`: 0 rows, 1 prefill tiles,
2 tiles with AMX scores where the CPU and OS allow, 3 that with decode rows by GQA group, as the op
runs); each round times one call of each, in turn, so load from other processes hits all alike.
The default cases are prefill-heavy; `--decode` runs decode-only batches of 1, 8 and 64 sequences
at contexts of 128-1024. Prints the median milliseconds of each, the speedups over the first and
the last one's GFLOP/s (4 * head_dim FLOPs per query head and key seen: QK^T and PV). With one
thread the kernel runs on the calling thread, so the clock is that thread's CPU time, which time
slices lost to other processes do not inflate; with more, wall time.
"""
from __future__ import annotations

import argparse
import ctypes
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chip.native import build  # noqa: E402
from chip.ops import paged_attention_native as native  # noqa: E402

HEADS, KV_HEADS, HEAD_DIM, BLOCK = 9, 3, 64, 16


def cases(gen: torch.Generator) -> dict[str, tuple[list[int], list[int]]]:
    """name -> (query rows per sequence, keys per sequence)."""
    w_prompts = torch.randint(64, 513, (4,), generator=gen).tolist()
    decode_ctx = torch.randint(64, 641, (64,), generator=gen).tolist()
    return {
        "prefill 288": ([288], [288]),
        "prefill 512": ([512], [512]),
        "chunk 256 at 768": ([256], [1024]),
        "4 prompts 64-512": (w_prompts, w_prompts),
        "mixed: 60 decodes + 256-chunk": ([1] * 60 + [256], decode_ctx[:60] + [400]),
        "decode 64, ctx 64-640": ([1] * 64, decode_ctx),
    }


def decode_cases(gen: torch.Generator) -> dict[str, tuple[list[int], list[int]]]:
    """Decode-only batches (one query row per sequence), as most steps of W and all of batch 1."""
    out = {}
    for batch in (1, 8, 64):
        for low, high in ((128, 128), (512, 512), (1024, 1024), (128, 1024)):
            ctx = torch.randint(low, high + 1, (batch,), generator=gen).tolist()
            span = f"{low}" if low == high else f"{low}-{high}"
            out[f"decode {batch}, ctx {span}"] = ([1] * batch, ctx)
    return out


def flops(q_lens: list[int], ctx_lens: list[int]) -> float:
    keys = sum(n * c - n * (n - 1) // 2 for n, c in zip(q_lens, ctx_lens))
    return 4.0 * HEAD_DIM * HEADS * keys


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--variants", default="0,1,2",
                        help="paged_attention_variant codes, the first is the baseline")
    parser.add_argument("--decode", action="store_true", help="decode-only batches instead")
    args = parser.parse_args()
    codes = [int(c) for c in args.variants.split(",")]
    torch.set_num_threads(args.threads)
    variant = build.function("paged_attention", "paged_attention_variant",
                             (ctypes.c_int, *native._SIGNATURE))
    gen = torch.Generator().manual_seed(0)
    k_cache = torch.randn(8192, BLOCK, KV_HEADS, HEAD_DIM, generator=gen).bfloat16()
    v_cache = torch.randn(8192, BLOCK, KV_HEADS, HEAD_DIM, generator=gen).bfloat16()
    print(f"threads {args.threads}, rounds {args.rounds}: median ms of variants {codes}, "
          f"speedups over {codes[0]}, GFLOP/s of the last")
    for name, (q_lens, ctx_lens) in (decode_cases(gen) if args.decode else cases(gen)).items():
        width = max(-(-c // BLOCK) for c in ctx_lens)
        tables = torch.randperm(8192, generator=gen)[:len(ctx_lens) * width].view(len(ctx_lens), width)
        cu = torch.tensor([0, *torch.tensor(q_lens).cumsum(0).tolist()])
        lens = torch.tensor(ctx_lens)
        q = torch.randn(sum(q_lens), HEADS, HEAD_DIM, generator=gen).bfloat16()
        out = torch.empty_like(q)

        def call(tiled: int) -> torch.Tensor:
            variant(tiled, 0, q.data_ptr(), k_cache.data_ptr(), v_cache.data_ptr(), tables.data_ptr(),
                    width, cu.data_ptr(), lens.data_ptr(), out.data_ptr(), len(ctx_lens), HEADS,
                    KV_HEADS, HEAD_DIM, BLOCK, 0.125, args.threads)
            return out.clone()

        base = call(codes[0]).float()
        worst = max(float((call(code).float() - base).abs().max()) for code in codes)
        clock = time.thread_time if args.threads == 1 else time.perf_counter
        times: list[list[float]] = [[] for _ in codes]
        for _ in range(args.rounds):
            for i, code in enumerate(codes):
                start = clock()
                call(code)
                times[i].append(clock() - start)
        med = [statistics.median(t) for t in times]
        print(f"{name:32s} " + " / ".join(f"{t * 1e3:7.3f}" for t in med) + " ms  "
              + " ".join(f"{med[0] / t:4.2f}x" for t in med[1:])
              + f"  {flops(q_lens, ctx_lens) / med[-1] / 1e9:6.1f} GFLOP/s"
              f"  (max |diff| vs {codes[0]} {worst:.1e})")


if __name__ == "__main__":
    main()
