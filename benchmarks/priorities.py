"""Chat TTFT under a saturating batch load, with and without priorities, in the same run.

One server (the real app over HTTP, API keys on, the bundled demo model) and two phases:
  - without priorities: the batch jobs use an interactive key, like the chat clients;
  - with priorities: the batch jobs use a key created with priority class `batch`.
In each phase --batch-clients closed-loop clients keep /v1/completions busy (each sends its next
request as soon as one ends: more requests than the engine's --max-num-seqs slots, so the queue
never empties), and --chat-requests streamed chat requests arrive one every --chat-interval-s.
Reported per phase: chat TTFT p50 / p99 (client-side, to the first content token), batch
output tok/s (what the batch jobs pay), and the ratio of chat TTFT p99 without / with.

    python benchmarks/priorities.py            # about 1 minute on 2 cores

Running sequences are never preempted for priority: a chat request waits for a free slot, not for
the queue ahead of it. Numbers move with other load on the machine; compare within one run.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402

from app.api.main import create_app  # noqa: E402
from app.core.config import Settings  # noqa: E402
from app.demo.recipe import DEMO_MODEL_DIR  # noqa: E402
from app.serving.loading import load_served_model  # noqa: E402
from app.serving.model_host import ModelHost  # noqa: E402
from shared import EngineConfig  # noqa: E402
from threaded_app import ThreadedApp  # noqa: E402

logger = logging.getLogger("priorities")
ADMIN_KEY = "fw-bench-priorities-admin"
CHAT = [{"role": "user", "content": "What is the capital of France?"}]
BATCH_PROMPT = "Summarize the following notes about the history of the city in three sentences:"


@dataclass(slots=True)
class Phase:
    name: str
    chat_ttft_s: list[float]
    batch_tokens: int
    elapsed_s: float


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


class Server(ThreadedApp):
    def __init__(self, config: EngineConfig, data_dir: Path) -> None:
        host = ModelHost()
        self.model = load_served_model(DEMO_MODEL_DIR, config, model_id="demo")
        host.add(self.model)
        app = create_app(Settings(data_dir=data_dir, api_keys=[ADMIN_KEY], max_queue_len=4096),
                         host=host)
        super().__init__(app)


def create_key(url: str, priority_class: str) -> str:
    response = httpx.post(f"{url}/v1/api-keys", headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                          json={"name": f"bench-{priority_class}",
                                "priority_class": priority_class})
    response.raise_for_status()
    return response.json()["key"]


async def chat_ttft(client: httpx.AsyncClient, key: str, max_tokens: int) -> float:
    start = time.perf_counter()
    body = {"model": "demo", "messages": CHAT, "max_tokens": max_tokens, "stream": True,
            "temperature": 0}
    ttft = None
    async with client.stream("POST", "/v1/chat/completions", json=body,
                             headers={"Authorization": f"Bearer {key}"}) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if ttft is None and line.startswith("data: {"):
                choices = json.loads(line[6:])["choices"]
                if choices and choices[0]["delta"].get("content"):
                    ttft = time.perf_counter() - start
    assert ttft is not None, "the chat request produced no content"
    return ttft


async def batch_loop(client: httpx.AsyncClient, key: str, max_tokens: int,
                     stop: asyncio.Event) -> int:
    tokens = 0
    body = {"model": "demo", "prompt": BATCH_PROMPT, "max_tokens": max_tokens,
            "ignore_eos": True, "temperature": 0}
    while not stop.is_set():
        response = await client.post("/v1/completions", json=body,
                                     headers={"Authorization": f"Bearer {key}"})
        response.raise_for_status()
        tokens += response.json()["usage"]["completion_tokens"]
    return tokens


async def run_phase(name: str, url: str, batch_key: str, chat_key: str, args) -> Phase:
    limits = httpx.Limits(max_connections=args.batch_clients + args.chat_requests + 8)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        stop = asyncio.Event()
        started = time.perf_counter()
        batch = [asyncio.create_task(batch_loop(client, batch_key, args.batch_max_tokens, stop))
                 for _ in range(args.batch_clients)]
        await asyncio.sleep(args.warmup_s)  # the queue fills before the first chat request
        chats = []
        for _ in range(args.chat_requests):
            chats.append(asyncio.create_task(chat_ttft(client, chat_key, args.chat_max_tokens)))
            await asyncio.sleep(args.chat_interval_s)
        ttfts = await asyncio.gather(*chats)
        stop.set()
        tokens = sum(await asyncio.gather(*batch))
        return Phase(name, list(ttfts), tokens, time.perf_counter() - started)


def report(phase: Phase) -> None:
    logger.info("%-22s chat TTFT p50 %7.1f ms  p99 %7.1f ms   batch %6.0f tok/s",
                phase.name, 1000 * percentile(phase.chat_ttft_s, 50),
                1000 * percentile(phase.chat_ttft_s, 99), phase.batch_tokens / phase.elapsed_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-num-seqs", type=int, default=4)
    parser.add_argument("--batch-clients", type=int, default=16)
    parser.add_argument("--batch-max-tokens", type=int, default=64)
    parser.add_argument("--chat-requests", type=int, default=30)
    parser.add_argument("--chat-interval-s", type=float, default=0.3)
    parser.add_argument("--chat-max-tokens", type=int, default=8)
    parser.add_argument("--warmup-s", type=float, default=2.0)
    parser.add_argument("--num-threads", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    config = EngineConfig(max_num_seqs=args.max_num_seqs, num_threads=args.num_threads)
    with tempfile.TemporaryDirectory() as data_dir, Server(config, Path(data_dir)) as server:
        chat_key, batch_key = create_key(server.url, "interactive"), create_key(server.url, "batch")
        same_class_key = create_key(server.url, "interactive")
        logger.info("demo model, max_num_seqs %d, %d closed-loop batch clients (%d tokens each), "
                    "%d chat requests every %.2f s (%d tokens), aging every %d steps",
                    args.max_num_seqs, args.batch_clients, args.batch_max_tokens,
                    args.chat_requests, args.chat_interval_s, args.chat_max_tokens,
                    config.priority_aging_steps)
        without = asyncio.run(run_phase("without priorities", server.url, same_class_key,
                                        chat_key, args))
        report(without)
        with_ = asyncio.run(run_phase("with priorities", server.url, batch_key, chat_key, args))
        report(with_)
    logger.info("chat TTFT p99 without / with priorities: %.1fx; p50: %.1fx; batch tok/s with / "
                "without: %.2f",
                percentile(without.chat_ttft_s, 99) / percentile(with_.chat_ttft_s, 99),
                percentile(without.chat_ttft_s, 50) / percentile(with_.chat_ttft_s, 50),
                (with_.batch_tokens / with_.elapsed_s) / (without.batch_tokens / without.elapsed_s))


if __name__ == "__main__":
    main()
