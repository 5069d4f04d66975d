"""Per-key request limits through the official `openai` client (no model needed: /v1/models),
their settings and flags, and the token estimate behind tokens-per-minute limits."""
from __future__ import annotations

import openai
import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.api.rate_limit import KeyRateLimits, requested_tokens
from app.cli import main
from app.core.config import Settings
from tests.shared_data import STORIES_HF

ADMIN_KEY = "fw-rate-admin-key-1"


@pytest.fixture
def http(tmp_path):
    app = create_app(Settings(data_dir=tmp_path, api_keys=[ADMIN_KEY], rate_limit_rpm=3))
    with TestClient(app) as client:
        yield client


def _openai(http: TestClient, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url="http://testserver/v1", api_key=key, max_retries=0,
                         http_client=http)


def test_requests_per_minute_per_key_answer_429_with_retry_after(http):
    other = http.post("/v1/api-keys", json={"name": "other"},
                      headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json()["key"]  # request 1
    client = _openai(http, ADMIN_KEY)
    client.models.list()
    client.models.list()
    with pytest.raises(openai.RateLimitError) as limited:
        client.models.list()
    assert limited.value.body["code"] == "rate_limit_exceeded"
    assert 1 <= int(limited.value.response.headers["retry-after"]) <= 60
    assert _openai(http, other).models.list() is not None  # another key has its own budget


def test_limits_are_off_by_default(tmp_path):
    with TestClient(create_app(Settings(data_dir=tmp_path, api_keys=[ADMIN_KEY]))) as http:
        client = _openai(http, ADMIN_KEY)
        for _ in range(50):
            client.models.list()


@pytest.mark.parametrize("flag", ["--rate-limit-rpm", "--rate-limit-tpm"])
def test_a_bad_limit_flag_exits_2_with_one_line(flag, tmp_path, capsys):
    code = main(["serve", "--model", str(STORIES_HF), "--data-dir", str(tmp_path), flag, "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "must be a positive integer" in err[0]


def test_token_estimate_counts_prompt_characters_and_requested_completion():
    chat = {"messages": [{"role": "user", "content": "x" * 40},
                         {"role": "user", "content": [{"type": "text", "text": "y" * 8}]}],
            "max_tokens": 100, "n": 2}
    assert requested_tokens(chat, max_model_len=512) == 12 + 200
    assert requested_tokens({"prompt": "z" * 10}, max_model_len=512) == 3 + 509  # rest of context
    assert requested_tokens({"prompt": [[1, 2, 3], [4]], "max_tokens": 5}, None) == 4 + 5


def test_a_request_larger_than_the_budget_uses_a_whole_empty_window():
    limits = KeyRateLimits(requests_per_minute=None, tokens_per_minute=100)
    assert limits.admit("k", token_cost=5_000) is None
    refusal = limits.admit("k", token_cost=1)
    assert refusal is not None and refusal.limit == "tokens" and refusal.retry_after_s >= 1
