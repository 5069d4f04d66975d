"""A real store outage on a live server: the SQLite file's directory disappears (new connections
fail with "unable to open database file") and comes back.

Store routes answer 503 `store_unavailable` with Retry-After and OpenAI's error body, and keep
the connection open (the catch-all used to answer 500 and close it); /health stays fast; /ready
says why it is not ready and recovers with the store; the UI shows a degraded banner meanwhile.
"""
from __future__ import annotations

import contextlib
import http.client
import json
import time
from pathlib import Path

import httpx
import pytest

from app.api.main import create_app
from app.core.config import Settings
from app.serving.model_host import ModelHost
from tests.app.api.conftest import MODEL_ID, ServerThread, load_model

UI_MAIN = str(Path(__file__).resolve().parents[3] / "app" / "ui" / "main.py")
CHAT = {"model": MODEL_ID, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}


@pytest.fixture(scope="module")
def outage_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("outage")
    host = ModelHost()
    host.add(load_model(num_kv_blocks=256, max_num_seqs=8))
    settings = Settings(data_dir=root / "data",
                        database_url=f"sqlite:///{root / 'db' / 'flywheel.db'}")
    app = create_app(settings, host=host)
    with ServerThread(app) as url:
        yield url, app, root / "db"


@contextlib.contextmanager
def store_down(app, db_dir: Path):
    """Move the database's directory away and drop pooled connections: every new connection
    fails as it would with the disk gone, until the directory is back."""
    away = db_dir.with_name("db-away")
    db_dir.rename(away)
    app.state.flywheel.store.engine.dispose()
    try:
        yield
    finally:
        away.rename(db_dir)


def _stored_conversation(http: httpx.Client) -> tuple[str, str]:
    reply = http.post("/v1/chat/completions", json=CHAT).json()
    deadline = time.monotonic() + 30
    while http.get(f"/v1/conversations/{reply['conversation_id']}").status_code != 200:
        assert time.monotonic() < deadline, "the exchange was never stored"
        time.sleep(0.05)
    return reply["conversation_id"], reply["message_id"]


def _assert_store_unavailable(status: int, headers, body: dict) -> None:
    assert status == 503, body
    assert body["error"]["code"] == "store_unavailable", body
    assert body["error"]["type"] == "service_unavailable_error"
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert int(headers["retry-after"]) > 0


def test_store_routes_answer_503_and_keep_the_connection_during_an_outage(outage_server):
    url, app, db_dir = outage_server
    with httpx.Client(base_url=url, timeout=30) as api:
        conversation_id, message_id = _stored_conversation(api)
        requests = [("GET", "/v1/conversations", None),
                    ("GET", f"/v1/conversations/{conversation_id}", None),
                    ("POST", "/v1/chat/completions", {**CHAT, "conversation_id": conversation_id}),
                    ("POST", "/v1/feedback", {"message_id": message_id, "thumbs": "up"})]
        with store_down(app, db_dir):
            # one keep-alive connection for every request: a 500 from the catch-all closed it
            connection = http.client.HTTPConnection(httpx.URL(url).host, httpx.URL(url).port,
                                                    timeout=30)
            for method, path, body in requests * 2:
                connection.request(method, path, body=None if body is None else json.dumps(body),
                                   headers={"content-type": "application/json"})
                response = connection.getresponse()
                _assert_store_unavailable(response.status, response.headers,
                                          json.loads(response.read()))
            connection.close()
        assert api.get("/v1/conversations").status_code == 200  # back once the store is


def test_health_stays_fast_and_ready_reports_the_outage(outage_server):
    url, app, db_dir = outage_server
    with httpx.Client(base_url=url, timeout=30) as api:
        assert api.get("/ready").status_code == 200
        with store_down(app, db_dir):
            started = time.perf_counter()
            health = api.get("/health")
            assert health.status_code == 200 and time.perf_counter() - started < 0.2
            ready = api.get("/ready")
            assert ready.status_code == 503
            report = ready.json()
            assert report["ready"] is False and report["store"]["reachable"] is False
            assert report["models"] == {MODEL_ID: "ready"}
            assert any("store" in reason for reason in report["reasons"])
        ready = api.get("/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["store"]["reachable"] is True and ready.json()["reasons"] == []


def test_the_ui_shows_a_degraded_banner_while_the_store_is_down(outage_server):
    from streamlit.testing.v1 import AppTest

    url, app, db_dir = outage_server

    def banner() -> list[str]:
        at = AppTest.from_file(UI_MAIN, default_timeout=60)
        at.session_state["api_url"] = url
        at.run()
        assert not at.exception
        return [w.value for w in at.warning if "degraded" in w.value]

    assert banner() == []
    with store_down(app, db_dir):
        shown = banner()
        assert len(shown) == 1 and "store is unreachable" in shown[0]
    assert banner() == []


def test_ready_counts_answers_waiting_in_the_outbox_and_says_when_it_is_full(tmp_path):
    host = ModelHost()
    host.add(load_model(num_kv_blocks=64, max_num_seqs=2))
    settings = Settings(data_dir=tmp_path / "data", outbox_max_records=1,
                        database_url=f"sqlite:///{tmp_path / 'db' / 'flywheel.db'}",
                        writer_backoff_s=0.02, writer_max_backoff_s=0.1)
    app = create_app(settings, host=host)
    with ServerThread(app) as url, httpx.Client(base_url=url, timeout=30) as api:
        assert api.get("/ready").json()["outbox"] == {"depth": 0, "capacity": 1}
        with store_down(app, tmp_path / "db"):
            assert api.post("/v1/chat/completions", json=CHAT).status_code == 200  # kept locally
            ready = api.get("/ready")
            assert ready.status_code == 503
            assert ready.json()["outbox"] == {"depth": 1, "capacity": 1}
            assert any("outbox is full" in reason for reason in ready.json()["reasons"])
        deadline = time.monotonic() + 30
        while (ready := api.get("/ready")).status_code != 200:  # the writer drains it
            assert time.monotonic() < deadline, ready.text
            time.sleep(0.05)
        assert ready.json()["outbox"] == {"depth": 0, "capacity": 1}
