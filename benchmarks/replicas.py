"""Engine replicas on Ray Serve over HTTP: 1 vs 2 replicas, and affinity vs power-of-two routing.

In one run, on one local Ray instance, the FastAPI front (uvicorn in a thread, SQLite store in a
temp dir) serves stories260K through `--replicas`-style deployments of one-thread replicas:
  - (1 replica, affinity), (2 replicas, affinity), (2 replicas, pow2 = Ray's default router);
  - W-lite: 32 requests, prompt lengths uniform in [32, 256] (random ids, random.Random(1234)),
    64 output tokens each (`ignore_eos`), greedy, all clients at once, non-streamed;
  - chat: 12 conversations of 3 turns run concurrently; the first prompt is 96 tokens (system
    prompt and question), each later one the previous prompt + its 16-token answer + 16 new
    "user" tokens (a multi-turn chat as the engine sees it).
Reported per configuration: req/s and output tok/s for each workload, and the chat's prefix
cache hit rate (prompt tokens found cached / looked up, summed over replicas from /v1/replicas).

    python benchmarks/replicas.py            # ~2-3 min on 2 shared cores

On a 2-core machine two one-thread replicas compete with the front, Ray and each other for the
same cores: the 2-vs-1 ratio shows overhead more than scaling. The hit rates do not depend on
the cores: they are what the routing policy decides.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from threaded_app import ThreadedApp

logger = logging.getLogger("bench.replicas")
W_REQUESTS, W_OUTPUT = 32, 64
CHATS, TURNS, OPENING_TOKENS, USER_TOKENS, ANSWER_TOKENS = 12, 3, 96, 16, 16
CONFIGS = [(1, "affinity"), (2, "affinity"), (2, "pow2")]


def model_dir() -> Path:
    from tests.shared_data import STORIES_HF

    return STORIES_HF


def w_lite(vocab: int) -> list[list[int]]:
    rng = random.Random(1234)
    return [[rng.randrange(3, vocab) for _ in range(rng.randint(32, 256))]
            for _ in range(W_REQUESTS)]


async def complete(http: httpx.AsyncClient, prompt: list[int], max_tokens: int) -> str:
    body = {"model": "bench", "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
            "ignore_eos": True}
    reply = (await http.post("/v1/completions", json=body)).raise_for_status().json()
    return reply["choices"][0]["text"]


async def run_w(url: str, prompts: list[list[int]]) -> float:
    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        start = time.perf_counter()
        await asyncio.gather(*(complete(http, p, W_OUTPUT) for p in prompts))
        return time.perf_counter() - start


async def run_chat(url: str, tokenizer) -> float:
    rng, vocab = random.Random(99), tokenizer.vocab_size
    openings = [[rng.randrange(3, vocab) for _ in range(OPENING_TOKENS)] for _ in range(CHATS)]

    async def conversation(http: httpx.AsyncClient, prompt: list[int]) -> None:
        for _ in range(TURNS):
            answer = tokenizer.encode(await complete(http, prompt, ANSWER_TOKENS), add_bos=False)
            prompt = prompt + answer + [rng.randrange(3, vocab) for _ in range(USER_TOKENS)]

    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        start = time.perf_counter()
        await asyncio.gather(*(conversation(http, p) for p in openings))
        return time.perf_counter() - start


def cache_counters(url: str) -> tuple[int, int]:
    replicas = httpx.get(f"{url}/v1/replicas", timeout=30).json()["data"][0]["replicas"]
    return (sum(r["num_prefix_cache_hits"] for r in replicas),
            sum(r["num_prefix_cache_queries"] for r in replicas))


class Front(ThreadedApp):
    """The FastAPI app over one served model, uvicorn in a daemon thread on a free port."""

    def __init__(self, served, data_dir: Path) -> None:
        from app.api.main import create_app
        from app.core.config import Settings
        from app.serving.model_host import ModelHost

        host = ModelHost()
        host.add(served)
        super().__init__(create_app(Settings(data_dir=data_dir), host=host, public_name="bench"))

    def __enter__(self) -> str:
        return super().__enter__().url


def measure(num_replicas: int, router: str, prompts: list[list[int]], tokenizer) -> dict:
    from ray import serve

    from app.serving.ray_replicas.deploy import ReplicaConfig, deploy_replicated_model
    from shared import EngineConfig

    config = ReplicaConfig(num_replicas, router=router)
    engine = EngineConfig(num_threads=1, num_kv_blocks=1024, max_num_seqs=64)
    served = deploy_replicated_model(model_dir(), engine, f"r{num_replicas}-{router}", config)
    try:
        with tempfile.TemporaryDirectory() as data, Front(served, Path(data)) as url:
            asyncio.run(run_w(url, prompts[:4]))  # warm every code path once
            w_s = asyncio.run(run_w(url, prompts))
            hits0, queries0 = cache_counters(url)
            chat_s = asyncio.run(run_chat(url, tokenizer))
            hits1, queries1 = cache_counters(url)
    finally:
        serve.delete(served.engine.app_name)
    chat_requests = CHATS * TURNS
    return {"w_req_s": len(prompts) / w_s, "w_tok_s": len(prompts) * W_OUTPUT / w_s,
            "chat_req_s": chat_requests / chat_s,
            "chat_tok_s": chat_requests * ANSWER_TOKENS / chat_s,
            "hit_rate": (hits1 - hits0) / max(queries1 - queries0, 1)}


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("ray", "ray.serve", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    import ray

    from model.tokenizer import Tokenizer

    tokenizer = Tokenizer.from_dir(model_dir())
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    prompts = w_lite(tokenizer.vocab_size)
    results = {}
    try:
        for num_replicas, router in CONFIGS:
            results[(num_replicas, router)] = r = measure(num_replicas, router, prompts, tokenizer)
            logger.info("%d replica(s), %-8s W-lite %.2f req/s %.0f tok/s | chat %.2f req/s "
                        "%.0f tok/s, prefix-cache hit rate %.0f%%", num_replicas, router,
                        r["w_req_s"], r["w_tok_s"], r["chat_req_s"], r["chat_tok_s"],
                        100 * r["hit_rate"])
    finally:
        ray.shutdown()
    one, two, pow2 = (results[c] for c in CONFIGS)
    logger.info("2 vs 1 replica (affinity): W-lite %.2fx, chat %.2fx; chat hit rate affinity "
                "%.0f%% vs pow2 %.0f%%", two["w_req_s"] / one["w_req_s"],
                two["chat_req_s"] / one["chat_req_s"], 100 * two["hit_rate"],
                100 * pow2["hit_rate"])


if __name__ == "__main__":
    main()
