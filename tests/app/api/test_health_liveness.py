"""GET /health is liveness: it answers at once while requests that wait on a locked store fill
the server's worker threads (found by `flywheel bench reliability`: /health ran in the threadpool
that sync handlers and dependencies share, 40 threads, so 40 requests stuck on the store's 30 s
busy timeout would make a healthy server look dead to its orchestrator)."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from app.api.main import create_app
from app.core.config import Settings
from app.serving.model_host import ModelHost
from tests.app.api.conftest import ServerThread, load_model
from tests.app.api.test_durable_answers import locked_store

_NUM_STUCK = 48  # more than the threadpool's 40 tokens


@pytest.fixture
def server(tmp_path):
    host = ModelHost()
    host.add(load_model(num_kv_blocks=256, max_num_seqs=8))
    app = create_app(Settings(data_dir=tmp_path), host=host)
    with ServerThread(app) as url:
        yield url


def _create_conversation(url: str) -> None:
    try:
        httpx.post(f"{url}/v1/conversations", json={"title": "t"}, timeout=10)
    except httpx.TimeoutException:
        pass  # gone from the client; its handler keeps its worker thread until the store answers


def test_health_answers_while_store_writes_fill_the_threadpool(server, tmp_path):
    with locked_store(tmp_path), ThreadPoolExecutor(_NUM_STUCK) as pool:
        stuck = [pool.submit(_create_conversation, server) for _ in range(_NUM_STUCK)]
        time.sleep(1.0)  # they are all waiting on the lock now
        assert not any(f.done() for f in stuck)
        started = time.perf_counter()
        health = httpx.get(f"{server}/health", timeout=15)  # before: until the lock was gone
        health_s = time.perf_counter() - started
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert health_s < 5.0, f"/health took {health_s:.1f} s behind requests waiting on the store"
