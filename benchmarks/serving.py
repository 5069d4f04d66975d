"""Serving throughput and latency over HTTP against the offline engine, in the same run.

Workload W (as in benchmarks/throughput.py): 64 requests, prompt lengths uniform in [64, 512]
(random ids, random.Random(1234)), exactly 128 output tokens each (`ignore_eos`), greedy, on a
SmolLM2-135M-shaped model with random bf16 weights. The prompts go to /v1/completions as token
ids, streamed (SSE, with usage), from:
  - a burst: all clients at once (comparable to the offline run, which submits all at once);
  - a Poisson process at --rate requests/s (default: 80% of the offline rate).
Reported: req/s, output tok/s, TTFT and TPOT p50/p99 (client-side), and the ratio of the HTTP
burst's req/s to `app.LLM.generate` on the same prompts (target: >= 90%).

    python benchmarks/serving.py --quick      # smaller model and workload, ~1-2 min on 2 cores
    python benchmarks/serving.py              # workload W (several minutes on 2 cores)

The server runs in this process (uvicorn in a thread, SQLite store in a temp dir); the clients
are asyncio httpx streams in a separate process. Numbers move with other load on the machine; compare within one run.

Threads: the server's engine steps run in a worker thread (AsyncEngine uses asyncio.to_thread),
where torch's OpenMP intra-op team is not the one `torch.set_num_threads` sized in the main thread.
With the default --num-threads 1 both sides run the same way; with more, the offline and HTTP
numbers measure different threading, not serving overhead.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

# As in benchmarks/throughput.py: idle OpenMP workers sleep rather than spin on a shared box.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402

from threaded_app import ThreadedApp  # noqa: E402
from throughput import SMOLLM2_135M, IdTokenizer, percentile, workload  # noqa: E402

from app import LLM  # noqa: E402
from app.api.main import create_app  # noqa: E402
from app.core.config import Settings  # noqa: E402
from app.serving.engine_client import AsyncEngineClient  # noqa: E402
from app.serving.model_host import ModelHost, ServedModel  # noqa: E402
from framework.engine.async_engine import AsyncEngine  # noqa: E402
from framework.engine.llm_engine import LLMEngine  # noqa: E402
from model.llama import LlamaForCausalLM  # noqa: E402
from shared import EngineConfig, ModelConfig, SamplingParams  # noqa: E402

logger = logging.getLogger("serving")
MODEL_NAME = "smollm2-135m-shape"


@dataclass(slots=True)
class Workload:
    prompts: list[list[int]]
    output_len: int


@dataclass(slots=True)
class ClientResult:
    start_s: float
    ttft_s: float
    end_s: float
    num_output_tokens: int


def build_model(num_layers: int) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = ModelConfig(**{**SMOLLM2_135M, "num_hidden_layers": num_layers})
    return LlamaForCausalLM(config).to(torch.bfloat16).eval()


def engine_config(num_requests: int, num_threads: int) -> EngineConfig:
    # No prefix caching: the runs repeat the same prompts, and a later run must not get a head start.
    return EngineConfig(max_num_seqs=num_requests, max_num_batched_tokens=1024, max_model_len=1024,
                        num_threads=num_threads, enable_prefix_caching=False)


def run_offline(model, work: Workload, config: EngineConfig) -> float:
    """Seconds for `app.LLM.generate` on the whole workload, all submitted at once."""
    llm = LLM.from_loaded(SimpleNamespace(model=model, tokenizer=IdTokenizer()),
                          **{f: getattr(config, f) for f in ("max_num_seqs", "max_num_batched_tokens",
                                                            "max_model_len", "num_threads")})
    params = SamplingParams(temperature=0.0, max_tokens=work.output_len, ignore_eos=True)
    started = time.perf_counter()
    outputs = llm.generate(work.prompts, params, use_tqdm=False)
    elapsed = time.perf_counter() - started
    assert all(len(o.outputs[0].token_ids) == work.output_len for o in outputs)
    return elapsed


class Server(ThreadedApp):
    """The real app over a fresh engine on `model`, in a uvicorn thread on a free port."""

    def __init__(self, model, config: EngineConfig, data_dir: Path) -> None:
        engine = self.engine = LLMEngine(model, IdTokenizer(), config)
        host = ModelHost()
        host.add(ServedModel(id=MODEL_NAME, engine=AsyncEngineClient(AsyncEngine(engine)),
                             tokenizer=IdTokenizer(), max_model_len=engine.max_model_len))
        app = create_app(Settings(data_dir=data_dir, max_queue_len=4096), host=host)
        super().__init__(app)


async def stream_one(client: httpx.AsyncClient, prompt: list[int], output_len: int,
                     delay_s: float, origin: float) -> ClientResult:
    await asyncio.sleep(delay_s)
    start = time.perf_counter()
    ttft, num_tokens = None, 0
    body = {"model": MODEL_NAME, "prompt": prompt, "max_tokens": output_len, "temperature": 0,
            "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}}
    async with client.stream("POST", "/v1/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if chunk["choices"] and ttft is None:
                ttft = time.perf_counter() - start
            if chunk.get("usage"):
                num_tokens = chunk["usage"]["completion_tokens"]
    end = time.perf_counter()
    assert num_tokens == output_len, f"got {num_tokens} tokens, wanted {output_len}"
    return ClientResult(start - origin, ttft or end - start, end - origin, num_tokens)


async def run_clients(url: str, work: Workload, delays_s: list[float]) -> tuple[float, list[ClientResult]]:
    limits = httpx.Limits(max_connections=len(work.prompts) + 8)
    async with httpx.AsyncClient(base_url=url, timeout=3600, limits=limits) as client:
        origin = time.perf_counter()
        results = await asyncio.gather(*(stream_one(client, p, work.output_len, d, origin)
                                         for p, d in zip(work.prompts, delays_s)))
        return time.perf_counter() - origin, results


def clients_in_subprocess(pool, url: str, work: Workload,
                          delays_s: list[float]) -> tuple[float, list[ClientResult]]:
    """Run the clients in another process, so their parsing does not share the server's GIL."""
    return pool.submit(_client_process, url, work, delays_s).result()


def _client_process(url: str, work: Workload, delays_s: list[float]):
    return asyncio.run(run_clients(url, work, delays_s))


def summarize(name: str, elapsed_s: float, results: list[ClientResult],
              offline_s: float | None) -> dict:
    """Log one run; `offline_s` (the offline time for the same workload) adds the req/s ratio."""
    n = len(results)
    ttft = [r.ttft_s for r in results]
    tpot = [(r.end_s - r.start_s - r.ttft_s) / max(r.num_output_tokens - 1, 1) for r in results]
    row = {"name": name, "req_s": n / elapsed_s,
           "out_tok_s": sum(r.num_output_tokens for r in results) / elapsed_s,
           "ttft_p50": percentile(ttft, 0.5), "ttft_p99": percentile(ttft, 0.99),
           "tpot_p50": percentile(tpot, 0.5), "tpot_p99": percentile(tpot, 0.99)}
    ratio = f"  {offline_s / elapsed_s * 100:5.1f}% of offline req/s" if offline_s else ""
    logger.info("%-20s %6.3f req/s %8.1f tok/s  TTFT p50 %6.2fs p99 %6.2fs  TPOT p50 %5.0fms "
                "p99 %5.0fms%s", name, row["req_s"], row["out_tok_s"], row["ttft_p50"],
                row["ttft_p99"], row["tpot_p50"] * 1e3, row["tpot_p99"] * 1e3, ratio)
    return row


def make_workload(quick: bool, num_requests: int | None) -> tuple[Workload, int]:
    prompts = workload()
    if quick:
        count = num_requests or 16
        return Workload([p[:96] for p in prompts[:count]], 32), 6
    return Workload(prompts[:num_requests or len(prompts)], 128), SMOLLM2_135M["num_hidden_layers"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 layers, 16 requests, 96-token "
                        "prompts, 32 output tokens")
    parser.add_argument("--requests", type=int, default=None, help="override the request count")
    parser.add_argument("--repeats", type=int, default=None,
                        help="alternating offline/HTTP pairs (default: 5 quick, 2 full)")
    parser.add_argument("--rate", type=float, default=None, help="Poisson arrivals per second")
    parser.add_argument("--layers", type=int, default=None, help="override the layer count")
    parser.add_argument("--num-threads", type=int, default=1,
                        help="intra-op threads (see the module docstring before raising it)")
    args = parser.parse_args()
    args.repeats = args.repeats or (5 if args.quick else 2)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    torch.set_num_threads(args.num_threads)
    work, num_layers = make_workload(args.quick, args.requests)
    num_layers = args.layers or num_layers
    model = build_model(num_layers)
    config = engine_config(len(work.prompts), args.num_threads)
    logger.info("model: SmolLM2-135M shape with %d layers, bf16, random weights; %d threads; "
                "%d requests, %d prompt tokens, %d output tokens each", num_layers, args.num_threads,
                len(work.prompts), sum(map(len, work.prompts)), work.output_len)
    # Warm-up (on the whole workload in --quick): CPU kernels are prepared per shape on first use,
    # and whichever run came first would pay for it. Offline and HTTP bursts then alternate, twice each, so slow
    # drift from other load on the machine hits both sides alike.
    run_offline(model, work if args.quick else Workload(work.prompts[:8], 16), config)
    n = len(work.prompts)
    offline_runs, burst_runs, offline_cpu, burst_cpu = [], [], [], []
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    with pool, tempfile.TemporaryDirectory() as data_dir, Server(model, config, Path(data_dir)) as server:
        warm_up = work if args.quick else Workload(work.prompts[:8], 16)
        clients_in_subprocess(pool, server.url, warm_up, [0.0] * len(warm_up.prompts))
        for _ in range(args.repeats):
            cpu_before = process_cpu_s()
            offline_runs.append(run_offline(model, work, config))
            offline_cpu.append(process_cpu_s() - cpu_before)
            logger.info("%-20s %6.3f req/s %8.1f tok/s", "offline LLM", n / offline_runs[-1],
                        n * work.output_len / offline_runs[-1])
            steps_before = server.engine.stats.num_steps
            cpu_before = process_cpu_s()
            burst_s, burst = clients_in_subprocess(pool, server.url, work, [0.0] * n)
            burst_cpu.append(process_cpu_s() - cpu_before)
            logger.info("engine steps in the burst: %d", server.engine.stats.num_steps - steps_before)
            burst_runs.append(burst_s)
            summarize("HTTP burst", burst_s, burst, offline_runs[-1])
        offline_s = sum(offline_runs) / len(offline_runs)
        rate = args.rate or 0.8 * n / offline_s
        poisson_s, poisson = clients_in_subprocess(pool, server.url, work, poisson_arrivals(n, rate))
        summarize(f"HTTP Poisson {rate:.2f}/s", poisson_s, poisson, None)  # bound by arrivals
    ratios = sorted(o / b for o, b in zip(offline_runs, burst_runs))
    logger.info("HTTP burst / offline LLM req/s: median %.1f%% over %d alternating pairs "
                "(min %.1f%%, max %.1f%%; target >= 90%%)", statistics.median(ratios) * 100,
                len(ratios), ratios[0] * 100, ratios[-1] * 100)
    # CPU seconds of this process (engine + server, not the clients) per run: robust to other
    # load on the machine, which only stretches wall time.
    logger.info("CPU time: offline %.2fs, HTTP burst %.2fs per run (medians) -> serving costs "
                "%.1f%% extra CPU", statistics.median(offline_cpu), statistics.median(burst_cpu),
                (statistics.median(burst_cpu) / statistics.median(offline_cpu) - 1) * 100)


def process_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def poisson_arrivals(num_requests: int, rate_per_s: float) -> list[float]:
    rng = random.Random(1234)
    arrivals, t = [], 0.0
    for _ in range(num_requests):
        arrivals.append(t)
        t += rng.expovariate(rate_per_s)
    return arrivals

if __name__ == "__main__":
    main()
