"""Pay a process's one-time costs before the first real request (`LLM(..., warmup=True)`).

What a fresh process's first W run pays, measured on the 2-core box (`benchmarks/throughput.py
--cold-warm --quick`: SmolLM2-135M shape, bf16, 16 of W's requests, 16 tokens out, one engine;
process CPU time, which other load skews far less than wall time):
- first W 7.7 s CPU, second W with fresh ids of the same lengths 7.9 s: 0.97x, no first-run
  penalty. Repeating the first run's prompts: 1.7 s (0.22x), because the prefix cache skips their
  prefill; the issue's tables re-sent the same prompts, so part of their first-run loss was that
  (`benchmarks/peers.py` sends fresh ids);
- oneDNN creates a primitive per new linear shape: 19 in that first run, 68 ms in all;
- the KV pool is zero-filled, hence paged in, when the engine is built; minor page faults
  (22k-335k per run) do not fall after the first run: big temporaries are mapped and unmapped per
  step (a per-step cost, not a start-up one);
- the C kernels compile once per machine (cached on disk), not per process.
That was with a 1,024-token step budget. With `LLM`'s default of 2,048 the first run did pay:
1.06x the second run's CPU time (1.13x wall), 66k minor page faults against 3k -- the heap
growing to the biggest step's temporaries. With this warm-up: 0.98x CPU (1.04x wall), 10k
faults against 12k, for 4.2 s of start-up on the loaded box. So `LLM(model=DIR)` warms up by
default (`warmup=False` skips it): one step of a full token budget, then decode steps of 8..1
rows (batch-1's shapes included).

`warm_up` runs throwaway requests through the engine itself (the code paths real ones take), then
drops their prefix-cache entries and counters: the engine looks untouched.
"""
from __future__ import annotations

import random
import time

from shared import EngineStats, SamplingParams

DECODE_ROWS = 8  # decode steps of 8..1 rows: the shapes of small batches and of batch-1


def warm_up(engine, decode_rows: int = DECODE_ROWS) -> float:
    """Run the warm-up requests to completion on an idle `engine`; returns the seconds it took."""
    if engine.has_unfinished_requests():
        raise RuntimeError("warm_up needs an idle engine")
    started = time.perf_counter()
    vocab = engine.model.config.vocab_size
    rng = random.Random(0)  # fixed ids; their KV never serves a real prompt (cache reset below)
    budget = min(engine.config.max_num_batched_tokens, engine.max_model_len - 2)
    requests = [([rng.randrange(vocab) for _ in range(max(1, budget))], 1)]
    rows = max(1, min(decode_rows, engine.config.max_num_seqs))
    # one prefill step for all, then decode steps of rows, rows - 1, ..., 1 as they finish
    short = max(1, min(4, engine.max_model_len - 1))  # a prompt must leave room for a token
    requests += [([rng.randrange(vocab) for _ in range(short)], i + 2) for i in range(rows)]
    for i, (prompt, max_tokens) in enumerate(requests):
        engine.add_request(f"warmup-{i}", prompt, SamplingParams(
            temperature=0.0, max_tokens=max_tokens, ignore_eos=True, speculative=False))
        if i == 0:
            engine.step()  # the full-budget prefill alone, before the batch joins it
    while engine.has_unfinished_requests():
        engine.step()
    engine.block_manager.reset_prefix_cache()
    engine.block_manager.num_cache_queries = engine.block_manager.num_cache_hits = 0
    engine.scheduler.num_preemptions = 0
    engine._cumulative = EngineStats()
    return time.perf_counter() - started
