"""Model loading (503 until ready), /health, /metrics, and the server on PostgreSQL."""
from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.api.main import create_app
from app.core.config import Settings
from tests.app.api.conftest import MODEL_ID, load_model
from tests.utils.postgres import POSTGRES_URL, fresh_postgres_schema

CHAT = {"model": MODEL_ID, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}


def _wait_ready(client: TestClient, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while client.get("/health").status_code != 200:
        assert time.monotonic() < deadline, "model never became ready"
        time.sleep(0.05)


def test_requests_get_503_while_the_model_loads(tmp_path):
    release = threading.Event()

    def slow_load():
        release.wait(30)
        return load_model()

    with TestClient(create_app(Settings(data_dir=tmp_path), models={MODEL_ID: slow_load})) as client:
        health = client.get("/health")
        assert health.status_code == 503 and health.json()["models"] == {MODEL_ID: "loading"}
        response = client.post("/v1/chat/completions", json=CHAT)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "model_loading"
        assert client.get("/v1/models").json()["data"] == []
        release.set()
        _wait_ready(client)
        assert client.post("/v1/chat/completions", json=CHAT).status_code == 200


def test_a_model_that_fails_to_load_answers_503_with_the_reason(tmp_path):
    def broken():
        raise ValueError("config.json not found")

    with TestClient(create_app(Settings(data_dir=tmp_path), models={"broken": broken})) as client:
        deadline = time.monotonic() + 10
        while client.get("/health").json()["models"]["broken"] == "loading":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        response = client.post("/v1/chat/completions", json={**CHAT, "model": "broken"})
        assert response.status_code == 503 and "config.json not found" in response.json()["error"]["message"]


def _metrics(http) -> dict[str, list]:
    text = http.get("/metrics").text
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def _value(samples, name: str) -> float:
    return sum(s.value for s in samples if s.name == name and s.labels.get("model_version") == MODEL_ID)


def test_metrics_follow_the_traffic(http):
    before = _metrics(http)
    reply = http.post("/v1/completions", json={"model": MODEL_ID, "prompt": "A cat", "max_tokens": 5,
                                               "temperature": 0, "ignore_eos": True, "stream": True})
    assert reply.status_code == 200
    after = _metrics(http)
    ttft = "flywheel_time_to_first_token_seconds"
    assert _value(after[ttft], f"{ttft}_count") == _value(before[ttft], f"{ttft}_count") + 1
    itl = "flywheel_inter_token_latency_seconds"
    assert _value(after[itl], f"{itl}_count") == _value(before[itl], f"{itl}_count") + 4
    gen = "flywheel_generation_tokens"
    assert _value(after[gen], f"{gen}_total") >= _value(before[gen], f"{gen}_total") + 5
    for name in ("flywheel_num_requests_running", "flywheel_num_requests_waiting",
                 "flywheel_kv_cache_usage_ratio", "flywheel_prefix_cache_hit_rate",
                 "flywheel_prompt_tokens", "flywheel_requests_aborted", "flywheel_requests_preempted"):
        assert any(s.labels.get("model_version") == MODEL_ID for s in after[name]), name


@pytest.mark.db
def test_server_stores_exchanges_in_postgresql(live_server):
    with fresh_postgres_schema() as schema:
        settings = Settings(data_dir=live_server.settings.data_dir, database_url=POSTGRES_URL,
                            database_schema=schema)
        host_app = create_app(settings, models={MODEL_ID: load_model})
        with TestClient(host_app) as client:
            _wait_ready(client)
            reply = client.post("/v1/chat/completions", json=CHAT).json()
            stored = client.get(f"/v1/conversations/{reply['conversation_id']}").json()
            assert [m["role"] for m in stored["messages"]] == ["user", "assistant"]
            assert stored["messages"][1]["content"] == reply["choices"][0]["message"]["content"]
            feedback = client.post("/v1/feedback", json={"message_id": reply["message_id"],
                                                         "thumbs": "up"})
            assert feedback.status_code == 200
