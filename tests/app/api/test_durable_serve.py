"""kill -9 of a real `flywheel serve` during traffic, while the store cannot be written (SQLite
locked by another connection; PostgreSQL unreachable): after a restart, every answer a client
saw end (its finish_reason chunk) is in the store."""
from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.app.api.conftest import MODEL_DIR, MODEL_ID
from tests.app.api.test_durable_answers import locked_store
from tests.utils.postgres import POSTGRES_URL, fresh_postgres_schema
from tests.utils.tcp_proxy import TcpProxy

_NUM_CLIENTS = 6


class Server:
    def __init__(self, data_dir: Path, *extra: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--model", str(MODEL_DIR), "--port", "0",
             "--data-dir", str(data_dir), "--no-auth", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.url = self.process.stdout.readline().strip()
        assert self.url.startswith("http://127.0.0.1:"), "server did not start"
        deadline = time.monotonic() + 120
        while httpx.get(f"{self.url}/health", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "model did not load"
            time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


class Traffic:
    """Streaming chat clients in threads; `completed` collects the message id of every answer
    whose finish_reason chunk arrived."""

    def __init__(self, url: str) -> None:
        self.completed: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(url, i), daemon=True)
                         for i in range(_NUM_CLIENTS)]
        for thread in self._threads:
            thread.start()

    def wait_for(self, num_completed: int, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.completed) < num_completed:
            assert time.monotonic() < deadline, f"only {len(self.completed)} answers completed"
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _client(self, url: str, seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=url, timeout=30) as http:
            while not self._stop.is_set():
                body = {"model": MODEL_ID, "stream": True, "temperature": 0.8,
                        "seed": rng.randrange(10**6), "max_tokens": rng.randrange(8, 40),
                        "messages": [{"role": "user", "content": f"story {rng.random()}"}]}
                try:
                    self._one(http, body)
                except (httpx.HTTPError, OSError):
                    return  # the server was killed

    def _one(self, http: httpx.Client, body: dict) -> None:
        with http.stream("POST", "/v1/chat/completions", json=body) as response:
            for line in response.iter_lines():
                if line.startswith("data: {"):
                    chunk = json.loads(line[6:])
                    if chunk["choices"] and chunk["choices"][0]["finish_reason"]:
                        self.completed.append(chunk["message_id"])


def _wait_stored(stored_ids, expected: set[str], timeout_s: float = 60) -> set[str]:
    """What the restarted server's writer has put in the store once it holds `expected`."""
    deadline = time.monotonic() + timeout_s
    while not expected <= (stored := stored_ids()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return stored


@pytest.mark.slow
def test_kill_9_while_sqlite_is_locked_loses_no_acknowledged_answer(tmp_path):
    server = Server(tmp_path)
    traffic = Traffic(server.url)
    try:
        traffic.wait_for(10)
        with locked_store(tmp_path):  # answers now finish while the store cannot take them
            traffic.wait_for(len(traffic.completed) + 20)
            server.process.kill()
            server.process.wait()
            traffic.stop()
    finally:
        server.process.kill()
        traffic.stop()
    completed = set(traffic.completed)

    def stored_ids() -> set[str]:
        with sqlite3.connect(tmp_path / "flywheel.db", timeout=30) as db:
            return {r[0] for r in db.execute("SELECT id FROM messages WHERE role = 'assistant'")}

    assert not completed <= stored_ids()  # the locked store did not have them at the kill
    restarted = Server(tmp_path)
    try:
        stored = _wait_stored(stored_ids, completed)
    finally:
        restarted.stop()
    assert completed <= stored, f"{len(completed - stored)} of {len(completed)} answers lost"


@pytest.mark.slow
@pytest.mark.db
def test_kill_9_while_postgresql_is_unreachable_loses_no_acknowledged_answer(tmp_path):
    proxy = TcpProxy("127.0.0.1", 5432)
    with fresh_postgres_schema() as schema:
        url = (POSTGRES_URL.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
               + f"?options=-csearch_path%3D{schema}")
        server = Server(tmp_path, "--database-url", url)
        traffic = Traffic(server.url)
        try:
            traffic.wait_for(10)
            proxy.cut()  # the database goes away; answers keep finishing
            traffic.wait_for(len(traffic.completed) + 20)
            server.process.kill()
            server.process.wait()
        finally:
            server.process.kill()
            traffic.stop()
        completed = set(traffic.completed)
        proxy.restore()
        engine = create_engine(POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"})

        def stored_ids() -> set[str]:
            with engine.connect() as conn:
                return set(conn.scalars(text("SELECT id FROM messages WHERE role = 'assistant'")))

        assert not completed <= stored_ids()
        restarted = Server(tmp_path, "--database-url", url)
        try:
            stored = _wait_stored(stored_ids, completed)
        finally:
            restarted.stop()
            engine.dispose()
    proxy.close()
    assert completed <= stored, f"{len(completed - stored)} of {len(completed)} answers lost"
