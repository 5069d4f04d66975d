"""`throughput.py --cold-warm`: a fresh engine's first W run against its second, one process.

The engine is built as `LLM(model=DIR)` builds it (with its start-up warm-up, or without it:
`--no-warmup`), then serves W, then W again with fresh prompt ids of the same lengths (the same
work; no prefix to reuse), then W's first prompts once more (what the prefix cache gives when a
benchmark repeats itself). Besides wall time, each run's process CPU time and minor page faults
are printed: other load on a shared box stretches wall time, much less those two; and where the
first run's extra CPU time went, part by part (the engine's `StepProfiler`, as `--profile` uses).
Run it once with and once without `--no-warmup`: separate processes, since oneDNN's primitive
cache and the heap are per process.
"""
from __future__ import annotations

import logging
import random
import resource
import time

from framework.engine import LLMEngine
from framework.engine.step_profiler import StepPart, StepProfiler
from framework.engine.warmup import warm_up
from shared import EngineConfig, SamplingParams

logger = logging.getLogger("throughput")


def fresh_ids(prompts: list[list[int]], vocab: int, seed: int = 4321) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(3, vocab) for _ in p] for p in prompts]


def timed_run(engine: LLMEngine, prompts: list[list[int]], output_len: int, tag: str) -> dict:
    params = SamplingParams(temperature=0.0, max_tokens=output_len, ignore_eos=True)
    for i, prompt in enumerate(prompts):
        engine.add_request(f"{tag}-{i}", prompt, params)
    wall, cpu = time.perf_counter(), time.process_time()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    with StepProfiler(engine) as profiler:
        while engine.has_unfinished_requests():
            engine.step()
    return dict(wall=time.perf_counter() - wall, cpu=time.process_time() - cpu,
                faults=resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults,
                cpu_parts={part: sum(s.cpu_seconds[part] for s in profiler.steps)
                           for part in StepPart})


def report_cold_warm(model, tokenizer, prompts: list[list[int]], config: EngineConfig,
                     output_len: int, warmup: bool) -> None:
    started = time.perf_counter()
    engine = LLMEngine(model, tokenizer, config)
    warm_s = warm_up(engine) if warmup else 0.0
    logger.info("cold/warm: engine built in %.1fs (warm-up %s: %.1fs)",
                time.perf_counter() - started, "on" if warmup else "off", warm_s)
    first = timed_run(engine, prompts, output_len, "first")
    second = timed_run(engine, fresh_ids(prompts, model.config.vocab_size), output_len, "second")
    repeat = timed_run(engine, prompts, output_len, "repeat")
    for name, run in (("first W", first), ("second W (fresh ids)", second),
                      ("first W's prompts again", repeat)):
        logger.info("cold/warm: %-24s %6.1fs wall, %6.1fs CPU, %7d minor page faults", name,
                    run["wall"], run["cpu"], run["faults"])
    logger.info("cold/warm (warm-up %s): first/second run time %.2fx wall, %.2fx CPU; repeating "
                "the same prompts takes %.2fx the first run's CPU (prefix cache)",
                "on" if warmup else "off", first["wall"] / second["wall"],
                first["cpu"] / second["cpu"], repeat["cpu"] / first["cpu"])
    logger.info("cold/warm: first minus second run, CPU s by part: %s", ", ".join(
        f"{part.value} {first['cpu_parts'][part] - second['cpu_parts'][part]:+.2f}"
        for part in StepPart))
