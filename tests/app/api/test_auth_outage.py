"""Auth while the store is unreachable, and per-key token limits, through the official `openai`
client against a live server on the real tiny model.

The outage: the store the request path uses is swapped for one on a path SQLite cannot open, so
every query raises OperationalError as a refused database connection would (the history writer
keeps its own store, so answers are still written once it is back).
"""
from __future__ import annotations

import contextlib

import httpx
import openai
import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from app.api.main import create_app
from app.core.config import Settings
from app.serving.model_host import ModelHost
from app.store.session import Store
from tests.app.api.conftest import MODEL_ID, LiveServer, ServerThread, load_model

ADMIN_KEY = "fw-outage-admin-key-1"
TOKENS_PER_MINUTE = 300


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    model = load_model()
    host = ModelHost()
    host.add(model)
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), api_keys=[ADMIN_KEY],
                        rate_limit_tpm=TOKENS_PER_MINUTE)
    app = create_app(settings, host=host)
    with ServerThread(app) as url:
        yield LiveServer(url, app, model, settings)


@contextlib.contextmanager
def store_outage(live: LiveServer):
    state = live.state
    working = state.store
    engine = create_engine("sqlite:////proc/flywheel-unreachable/flywheel.db")
    state.store = Store(engine=engine, session_factory=sessionmaker(engine))
    try:
        yield
    finally:
        state.store = working
        engine.dispose()


@contextlib.contextmanager
def auth_disabled(live: LiveServer):
    keys, live.settings.api_keys = live.settings.api_keys, []
    try:
        yield
    finally:
        live.settings.api_keys = keys


def _client(live: LiveServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key=key, max_retries=0, timeout=120)


def _chat(client: openai.OpenAI, max_tokens: int = 4):
    return client.chat.completions.create(model=MODEL_ID, max_tokens=max_tokens, temperature=0,
                                          messages=[{"role": "user", "content": "Once upon"}])


def _new_key(live: LiveServer, name: str) -> str:
    response = httpx.post(f"{live.url}/v1/api-keys", json={"name": name},
                          headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    response.raise_for_status()
    return response.json()["key"]


def test_with_auth_off_a_bearer_key_needs_no_store(live):
    """The openai client always sends a key; with auth off it must not be looked up."""
    with auth_disabled(live), store_outage(live):
        answer = _chat(_client(live, "sk-anything"))
    assert answer.choices[0].message.content


def test_with_auth_off_a_session_token_falls_back_to_local_during_an_outage(live):
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    httpx.post(f"{live.url}/v1/users", headers=admin,
               json={"username": "outage-user", "password": "long-enough"}).raise_for_status()
    token = httpx.post(f"{live.url}/v1/auth/login",
                       json={"username": "outage-user", "password": "long-enough"}).json()["token"]
    with auth_disabled(live), store_outage(live):  # never verified before: nothing cached
        assert _chat(_client(live, token)).choices[0].message.content


def test_a_verified_key_keeps_working_through_a_short_outage(live):
    key = _new_key(live, "cached")
    assert _chat(_client(live, key)).choices
    with store_outage(live):
        assert _chat(_client(live, key)).choices[0].message.content
        # a key this server never verified cannot be checked now: 503, not 500 or 401
        with pytest.raises(openai.APIStatusError) as refused:
            _chat(_client(live, "fw-never-seen-before-key"))
    assert refused.value.status_code == 503
    assert refused.value.response.headers.get("retry-after")


def test_tokens_per_minute_per_key_answer_429_with_retry_after(live):
    key, other = _new_key(live, "tpm"), _new_key(live, "tpm-other")
    client = _client(live, key)
    half = TOKENS_PER_MINUTE // 2 - 10
    assert _chat(client, max_tokens=half).choices  # ~half the budget: prompt / 4 + max_tokens
    assert _chat(client, max_tokens=half).choices
    with pytest.raises(openai.RateLimitError) as limited:
        _chat(client, max_tokens=half)
    error = limited.value
    assert error.body["code"] == "rate_limit_exceeded" and "tokens per minute" in error.message
    assert 1 <= int(error.response.headers["retry-after"]) <= 60
    assert _chat(_client(live, other), max_tokens=half).choices  # limits are per key
