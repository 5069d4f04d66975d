"""bf16 decode through `LLM(model=DIR)` with and without the bf16 GEMV (chip/ops/bf16_gemv_native),
A/B in one process.

    .venv/bin/python benchmarks/bf16_gemv_ab.py [--rounds 3] [--threads 2] [--tokens 128] [--batch 1]

One `LLM(model=DIR, dtype="bfloat16")` on benchmarks/peers_checkpoint.py's SmolLM2-135M-shaped
random checkpoint; each round generates `--tokens` greedy tokens (ignore EOS) for `--batch` 32-token
prompts with the kernel off (oneDNN's prepacked linear) and then on; prints each run's output tok/s,
the medians and the ratio.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app import LLM  # noqa: E402
from benchmarks.int8_decode_ab import DEFAULT_MODEL_DIR, tokens_per_second  # noqa: E402
from benchmarks.peers_checkpoint import write_checkpoint  # noqa: E402
from chip.ops import bf16_gemv_native  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--batch", type=int, default=1, help="prompts decoded together")
    args = parser.parse_args()
    llm = LLM(model=str(write_checkpoint(args.model_dir)), dtype="bfloat16", num_threads=args.threads)
    prompts = [list(range(100 + i, 132 + i)) for i in range(args.batch)]
    settings = {"onednn": False, "gemv": True}
    for enabled in settings.values():  # first decode steps: oneDNN primitives, the C build
        bf16_gemv_native.ENABLED = enabled
        tokens_per_second(llm, prompts, 8)
    runs: dict[str, list[float]] = {name: [] for name in settings}
    for round_index in range(args.rounds):
        for name, enabled in settings.items():
            bf16_gemv_native.ENABLED = enabled
            runs[name].append(tokens_per_second(llm, prompts, args.tokens))
            print(f"round {round_index + 1} {name}: {runs[name][-1]:.1f} tok/s", flush=True)
    medians = {name: statistics.median(values) for name, values in runs.items()}
    print(f"bf16 batch-{args.batch} decode, {args.threads} threads, {args.tokens} tokens, median of "
          f"{args.rounds}: oneDNN {medians['onednn']:.1f} tok/s, bf16 GEMV {medians['gemv']:.1f} tok/s, "
          f"GEMV/oneDNN {medians['gemv'] / medians['onednn']:.2f}x")


if __name__ == "__main__":
    main()
