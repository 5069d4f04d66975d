"""What serving LoRA adapters in the batch costs, on a short version of workload W.

SmolLM2-135M shape, random bf16 weights (benchmarks/throughput.py); the first `--requests` prompts
of W (64-512 token ids), `--output-len` greedy tokens each (ignore EOS), all submitted at once,
prefix caching off (the runs repeat prompts). Four configurations, alternated in one run so that
other load on the box hits them alike:

- off: an engine without LoRA (a separate copy of the weights, no slots or hooks);
- 0 adapters: an engine with enable_lora=True (4 slots of rank 16), every request on the base;
- 1 adapter: every request under one rank-16 adapter on all seven projections;
- 4 adapters: requests spread round-robin over four such adapters (one step mixes all four).

Prints each run, the median req/s per configuration and its ratio to `off`; then chip's add_lora
op, dense fast path against the segment loop, on the q_proj / gate_proj shapes.

    python benchmarks/lora.py              # ~70 s of CPU time; 5 min wall at load average 12
    python benchmarks/lora.py --rounds 5 --requests 32
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see benchmarks/throughput.py

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.throughput import IdTokenizer, build_model, workload  # noqa: E402
from chip.ops.lora import add_lora_dense, add_lora_segments, lora_row_scales  # noqa: E402
from framework.engine import LLMEngine  # noqa: E402
from framework.lora import LORA_TARGETS, LoRAWeights, save_lora_adapter  # noqa: E402
from shared import EngineConfig, LoRARequest, SamplingParams  # noqa: E402

RANK = 16
CONFIGS = ("off", "0 adapters", "1 adapter", "4 adapters")


def write_adapters(model, root: Path, count: int) -> list[LoRARequest]:
    """`count` random rank-16 adapters on every projection of `model`, in PEFT layout."""
    requests = []
    for i in range(count):
        gen = torch.Generator().manual_seed(i)
        layers = {name: (torch.randn(RANK, m.in_features, generator=gen) * 0.01,
                         torch.randn(m.out_features, RANK, generator=gen) * 0.01)
                  for name, m in model.named_modules() if name.rsplit(".", 1)[-1] in LORA_TARGETS}
        save_lora_adapter(root / f"a{i}", LoRAWeights(RANK, 2.0, layers), alpha=2.0 * RANK)
        requests.append(LoRARequest(f"a{i}", i + 1, str(root / f"a{i}")))
    return requests


def run(engine: LLMEngine, prompts: list[list[int]], loras: list, output_len: int) -> float:
    """Requests/s of `prompts` (request i under loras[i % len(loras)]) served together."""
    params = SamplingParams(temperature=0.0, max_tokens=output_len, ignore_eos=True)
    started = time.perf_counter()
    for i, prompt in enumerate(prompts):
        engine.add_request(f"w{i}", prompt, params, lora_request=loras[i % len(loras)])
    while engine.has_unfinished_requests():
        engine.step()
    return len(prompts) / (time.perf_counter() - started)


def bench_engines(args) -> None:
    model = build_model()
    plain = copy.deepcopy(model)  # the LoRA engine hooks its model's layers; this one stays bare
    config = dict(enable_prefix_caching=False, num_threads=args.num_threads,
                  kv_cache_memory_bytes=2 << 30)
    off = LLMEngine(plain, IdTokenizer(), EngineConfig(**config))
    lora = LLMEngine(model, IdTokenizer(), EngineConfig(**config, enable_lora=True, max_loras=4,
                                                        max_lora_rank=RANK))
    prompts = workload()[:args.requests]
    with tempfile.TemporaryDirectory() as tmp:
        adapters = write_adapters(model, Path(tmp), 4)
        cases = {"off": (off, [None]), "0 adapters": (lora, [None]),
                 "1 adapter": (lora, adapters[:1]), "4 adapters": (lora, adapters)}
        print(f"{args.requests} requests of W, {args.output_len} tokens out, "
              f"{torch.get_num_threads()} threads, rank {RANK}, rounds {args.rounds}")
        run(off, prompts[:2], [None], 4)  # warm-up: first-call costs out of the first timed run
        run(lora, prompts[:4], adapters, 4)
        results: dict[str, list[float]] = {name: [] for name in CONFIGS}
        for round_index in range(args.rounds):
            for name in CONFIGS:
                engine, loras = cases[name]
                results[name].append(run(engine, prompts, loras, args.output_len))
                print(f"  round {round_index + 1} {name:11s} {results[name][-1]:6.3f} req/s")
    base = statistics.median(results["off"])
    print(f"{'configuration':14s} {'median req/s':>12s} {'vs off':>7s}")
    for name in CONFIGS:
        median = statistics.median(results[name])
        print(f"{name:14s} {median:12.3f} {median / base:7.3f}")


def best_us(fn, reps: int = 20, rounds: int = 7) -> float:
    fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - start) / reps)
    return best * 1e6


def bench_op() -> None:
    print("add_lora bf16, 4 slots of rank 16: segment loop vs dense (us per call, best of 7)")
    gen = torch.Generator().manual_seed(0)
    for d_in, d_out in ((576, 576), (576, 1536)):
        lora_a = (torch.randn(4, RANK, d_in, generator=gen) * 0.01).bfloat16()
        lora_b = (torch.randn(4, RANK, d_out, generator=gen) * 0.01).bfloat16().transpose(1, 2)
        scalings = torch.full((4,), 2.0)
        for used in (1, 4):
            for rows in (1, 16, 64, 256):
                x = torch.randn(rows, d_in, generator=gen).bfloat16()
                y = torch.randn(rows, d_out, generator=gen).bfloat16()
                indices = torch.arange(rows) % used
                scales = lora_row_scales(indices, scalings[:used], RANK, x.dtype)
                seg = best_us(lambda: add_lora_segments(y, x, indices, lora_a, lora_b, scalings))
                dense = best_us(lambda: add_lora_dense(y, x, indices, lora_a[:used], lora_b[:used],
                                                       scalings[:used], scales))
                print(f"  {d_in}->{d_out} {used} adapter(s) {rows:4d} rows: segments "
                      f"{seg:7.1f}  dense {dense:7.1f}  ratio {seg / dense:5.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--output-len", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--num-threads", type=int, default=2)
    parser.add_argument("--skip-engine", action="store_true", help="only the op comparison")
    args = parser.parse_args()
    torch.set_num_threads(args.num_threads)
    if not args.skip_engine:
        bench_engines(args)
    torch.set_num_threads(1)
    bench_op()


if __name__ == "__main__":
    main()
