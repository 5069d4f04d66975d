"""One huge request must not stall everyone: bodies over the limit get 413 before parsing, a chat
message over the content cap a quick 400, and /health keeps answering meanwhile."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import httpx
import pytest

from app.api.main import create_app
from app.core.config import Settings
from tests.app.api.conftest import MODEL_DIR, MODEL_ID

JSON = {"content-type": "application/json"}


def _chat_body(content_chars: int) -> bytes:
    return json.dumps({"model": MODEL_ID, "messages": [
        {"role": "user", "content": "hello world " * (content_chars // 12)}]}).encode()


def _assert_413(response: httpx.Response, limit: int) -> None:
    assert response.status_code == 413, response.text[:200]
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "request_too_large" and str(limit) in error["message"]


def test_a_5mb_chat_message_is_refused_quickly_while_health_answers(live_server):
    body = _chat_body(5_000_000)
    result = {}

    def post() -> None:
        started = time.perf_counter()
        response = httpx.post(f"{live_server.url}/v1/chat/completions", content=body,
                              headers=JSON, timeout=120)
        result.update(status=response.status_code, error=response.json()["error"],
                      elapsed_s=time.perf_counter() - started)

    health_s = []
    with httpx.Client(base_url=live_server.url, timeout=30) as health:
        health.get("/health")  # a warm connection, so each sample is one round trip
        sender = threading.Thread(target=post)
        sender.start()
        while sender.is_alive() or not health_s:
            started = time.perf_counter()
            assert health.get("/health").status_code == 200
            health_s.append(time.perf_counter() - started)
        sender.join()
    assert result["status"] == 400 and result["error"]["param"].startswith("messages")
    assert result["elapsed_s"] < 2.0, result
    assert max(health_s) < 0.2, f"/health took {max(health_s):.3f} s during the 5 MB request"


def test_a_50mb_body_is_413(live_server):
    limit = live_server.settings.max_body_bytes
    started = time.perf_counter()
    response = httpx.post(f"{live_server.url}/v1/chat/completions", content=_chat_body(50_000_000),
                          headers=JSON, timeout=120)
    _assert_413(response, limit)
    assert time.perf_counter() - started < 10


def test_a_chunked_body_over_the_limit_is_413(live_server):
    limit = live_server.settings.max_body_bytes
    chunk = b"x" * 65536

    def chunks():  # no Content-Length: httpx sends it chunked
        yield b'{"model": "%s", "messages": [{"role": "user", "content": "' % MODEL_ID.encode()
        for _ in range(limit // len(chunk) + 2):
            yield chunk
        yield b'"}]}'

    response = httpx.post(f"{live_server.url}/v1/chat/completions", content=chunks(),
                          headers=JSON, timeout=120)
    _assert_413(response, limit)


def test_a_chunked_body_within_the_limit_reaches_the_route(live_server):
    def chunks():
        yield b'{"model": "%s", "messages": [{"role": "user", ' % MODEL_ID.encode()
        yield b'"content": "Hi"}], "max_tokens": 2}'

    response = httpx.post(f"{live_server.url}/v1/chat/completions", content=chunks(),
                          headers=JSON, timeout=120)
    assert response.status_code == 200, response.text


def test_the_limit_comes_from_settings(tmp_path):
    from fastapi.testclient import TestClient

    with TestClient(create_app(Settings(data_dir=tmp_path, max_body_bytes=4096))) as client:
        _assert_413(client.post("/v1/chat/completions", content=b"x" * 4097, headers=JSON), 4096)
        assert client.post("/v1/chat/completions", content=b"x" * 4096,
                           headers=JSON).status_code == 400  # within the limit: parsed, bad JSON


def test_serve_takes_max_body_bytes(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--model", str(MODEL_DIR), "--port", "0",
         "--data-dir", str(tmp_path), "--max-body-bytes", "2048", "--no-auth"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), process.stderr.read()
        _assert_413(httpx.post(f"{url}/v1/chat/completions", content=b"x" * 4096, headers=JSON,
                               timeout=60), 2048)
    finally:
        process.terminate()
        process.wait(timeout=60)


@pytest.mark.parametrize("value", ["0"])
def test_serve_refuses_a_bad_max_body_bytes(tmp_path, value):
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--model", str(MODEL_DIR), "--data-dir",
         str(tmp_path), "--max-body-bytes", value], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "max" in result.stderr
