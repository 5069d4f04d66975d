"""Many concurrent streams, client disconnects freeing KV blocks, a full queue answering 429."""
from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from app.api.main import create_app
from app.core.config import Settings
from app.serving.model_host import ModelHost
from tests.app.api.conftest import MODEL_ID, ServerThread, load_model

NUM_CLIENTS = 100


def _body(i: int, stream: bool) -> dict:
    return {"model": MODEL_ID, "messages": [{"role": "user", "content": f"Story number {i}: a"}],
            "max_tokens": 12, "temperature": 0.8, "seed": 1000 + i, "stream": stream}


async def _stream_text(client: httpx.AsyncClient, body: dict) -> str:
    parts, done = [], False
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line == "data: [DONE]":
                done = True
            elif line.startswith("data: "):
                parts.append(json.loads(line[6:])["choices"][0]["delta"].get("content", ""))
    assert done
    return "".join(parts)


def test_100_concurrent_streams_match_a_sequential_run(live_server, http):
    sequential = [http.post("/v1/chat/completions", json=_body(i, False)).json()
                  ["choices"][0]["message"]["content"] for i in range(NUM_CLIENTS)]

    async def run() -> list[str]:
        limits = httpx.Limits(max_connections=NUM_CLIENTS)
        async with httpx.AsyncClient(base_url=live_server.url, timeout=300, limits=limits) as client:
            return await asyncio.gather(*(_stream_text(client, _body(i, True))
                                          for i in range(NUM_CLIENTS)))

    concurrent = asyncio.run(run())
    assert concurrent == sequential
    assert len(set(concurrent)) > NUM_CLIENTS * 0.9


def _wait_until(predicate, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _long_body(stream: bool) -> dict:
    return {"model": MODEL_ID, "prompt": "Once upon a time", "max_tokens": 400, "temperature": 0,
            "ignore_eos": True, "stream": stream}


def test_disconnect_mid_stream_aborts_and_frees_blocks(live_server):
    stats = lambda: live_server.model.engine.stats  # noqa: E731
    assert _wait_until(lambda: stats().num_kv_blocks_used == 0)
    aborted_before = stats().num_aborted
    with httpx.Client(base_url=live_server.url, timeout=60) as client:
        with client.stream("POST", "/v1/completions", json=_long_body(True)) as response:
            lines = response.iter_lines()
            received = [next(lines) for _ in range(6)]
            assert any(line.startswith("data: {") for line in received)
            assert stats().num_kv_blocks_used > 0
    assert _wait_until(lambda: stats().num_kv_blocks_used == 0 and stats().num_running == 0)
    assert stats().num_aborted == aborted_before + 1
    assert stats().num_generation_tokens < 10_000


def test_disconnect_while_waiting_for_a_json_answer_aborts_too(live_server):
    stats = lambda: live_server.model.engine.stats  # noqa: E731
    assert _wait_until(lambda: stats().num_kv_blocks_used == 0)
    aborted_before = stats().num_aborted
    with httpx.Client(base_url=live_server.url, timeout=httpx.Timeout(60, read=0.1)) as client:
        with pytest.raises(httpx.ReadTimeout):  # 8 x 500 tokens take well over 0.1 s
            client.post("/v1/completions", json={**_long_body(False), "max_tokens": 500, "n": 8})
    assert _wait_until(lambda: stats().num_aborted == aborted_before + 1)
    assert _wait_until(lambda: stats().num_kv_blocks_used == 0 and stats().num_running == 0)


def test_full_queue_answers_429(tmp_path):
    host = ModelHost()
    host.add(load_model(max_queue_len=1, max_num_seqs=1))
    app = create_app(Settings(data_dir=tmp_path), host=host)

    async def burst(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            bodies = [{**_long_body(False), "max_tokens": 60} for _ in range(6)]
            return await asyncio.gather(*(client.post("/v1/completions", json=b) for b in bodies))

    with ServerThread(app) as url:
        responses = asyncio.run(burst(url))
    statuses = sorted(r.status_code for r in responses)
    assert 200 in statuses and 429 in statuses and set(statuses) <= {200, 429}
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json()["error"]["code"] == "queue_full"
    assert refused.json()["error"]["type"] == "rate_limit_error"
