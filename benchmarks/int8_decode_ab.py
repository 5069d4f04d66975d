"""Decode through `LLM(model=DIR)`: bf16 against weight-only int8, A/B in one process.

    .venv/bin/python benchmarks/int8_decode_ab.py [--rounds 3] [--threads 2] [--tokens 128] [--batch 1]

Both load the SmolLM2-135M-shaped random bf16 checkpoint of benchmarks/peers_checkpoint.py (written
on first use, then reused): `LLM(model=DIR, dtype="bfloat16")` and the same with
`quantization="int8"`. Each round generates `--tokens` greedy tokens (ignore EOS) for `--batch`
32-token prompts on each in turn; prints each run's output tok/s, the medians and the ratio.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app import LLM, SamplingParams  # noqa: E402
from benchmarks.peers_checkpoint import write_checkpoint  # noqa: E402

CACHE = Path(os.environ.get("FLYWHEEL_CACHE_DIR") or Path.home() / ".cache" / "flywheel")
DEFAULT_MODEL_DIR = CACHE / "peers" / "smollm2-135m-shape-random-bf16"  # benchmarks/peers.py's


def tokens_per_second(llm: LLM, prompts: list[list[int]], max_tokens: int) -> float:
    params = SamplingParams(max_tokens=max_tokens, min_tokens=max_tokens, ignore_eos=True,
                            temperature=0.0)
    start = time.perf_counter()
    out = llm.generate(prompts, params, use_tqdm=False)
    seconds = time.perf_counter() - start
    assert all(len(o.outputs[0].token_ids) == max_tokens for o in out)
    return len(prompts) * max_tokens / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--batch", type=int, default=1, help="prompts decoded together")
    args = parser.parse_args()
    model = str(write_checkpoint(args.model_dir))
    systems = {"bf16": LLM(model=model, dtype="bfloat16", num_threads=args.threads),
               "int8": LLM(model=model, dtype="bfloat16", num_threads=args.threads,
                           quantization="int8")}
    prompts = [list(range(100 + i, 132 + i)) for i in range(args.batch)]
    for llm in systems.values():  # first decode steps: oneDNN primitives, the C builds
        tokens_per_second(llm, prompts, 8)
    runs: dict[str, list[float]] = {name: [] for name in systems}
    for round_index in range(args.rounds):
        for name, llm in systems.items():
            runs[name].append(tokens_per_second(llm, prompts, args.tokens))
            print(f"round {round_index + 1} {name}: {runs[name][-1]:.1f} tok/s", flush=True)
    medians = {name: statistics.median(values) for name, values in runs.items()}
    print(f"batch-{args.batch} decode, {args.threads} threads, {args.tokens} tokens, median of {args.rounds}: "
          f"bf16 {medians['bf16']:.1f} tok/s, int8 {medians['int8']:.1f} tok/s, "
          f"int8/bf16 {medians['int8'] / medians['bf16']:.2f}x")


if __name__ == "__main__":
    main()
