"""Prefix-cache isolation over HTTP, through the official openai client: `cache_salt` and
`skip_prefix_cache` in the body (extra_body), and `--prefix-cache-isolation user`.

What a request found cached is read from `usage.prompt_tokens_details.cached_tokens`; answers
are compared with the same greedy request made without any prefix cache reuse.
"""
from __future__ import annotations

import subprocess
import sys
import uuid

import httpx
import openai
import pytest

from app.api.main import create_app
from app.core.config import Settings
from app.serving.model_host import ModelHost
from tests.app.api.conftest import MODEL_DIR, MODEL_ID, ServerThread, load_model

ADMIN_KEY = "fw-test-admin-key-cache-salt"


def _prompt() -> str:
    """Unique from its first block on, so nothing cached by other tests can hit."""
    return f"{uuid.uuid4().hex} Once upon a time there was a little dog named Tim who liked to run."


def _complete(client: openai.OpenAI, prompt: str, **extra) -> tuple[str, int]:
    reply = client.completions.create(model=MODEL_ID, prompt=prompt, max_tokens=6, temperature=0,
                                      extra_body=extra or None)
    return reply.choices[0].text, reply.usage.prompt_tokens_details.cached_tokens


def test_completions_share_only_within_a_salt(client):
    prompt = _prompt()
    reference, cached = _complete(client, prompt, skip_prefix_cache=True)
    assert cached == 0
    salts = ("alpha", "beta", "alpha", "beta")
    runs = [_complete(client, prompt, cache_salt=salt) for salt in salts]
    assert [cached > 0 for _, cached in runs] == [False, False, True, True]
    assert _complete(client, prompt, cache_salt="alpha", skip_prefix_cache=True)[1] == 0
    assert all(text == reference for text, _ in runs)


def test_opt_out_publishes_nothing_and_unsalted_requests_still_share(client):
    prompt = _prompt()
    assert _complete(client, prompt, skip_prefix_cache=True)[1] == 0
    assert _complete(client, prompt)[1] == 0  # the opted-out request left nothing behind
    assert _complete(client, prompt)[1] > 0


def test_chat_salt(client):
    messages = [{"role": "user", "content": _prompt()}]

    def cached(**extra) -> int:
        reply = client.chat.completions.create(model=MODEL_ID, messages=messages, max_tokens=4,
                                               temperature=0, extra_body=extra or None)
        return reply.usage.prompt_tokens_details.cached_tokens

    first, other, again = cached(cache_salt="s1"), cached(cache_salt="s2"), cached(cache_salt="s1")
    assert first == other == 0 and again > 0


@pytest.mark.parametrize("extra", [{"cache_salt": ""}, {"cache_salt": "x" * 257},
                                   {"cache_salt": 7}, {"skip_prefix_cache": "yes"}])
def test_bad_isolation_fields_are_400(client, extra):
    with pytest.raises(openai.BadRequestError) as caught:
        _complete(client, "Once", **extra)
    assert caught.value.status_code == 400
    assert list(extra)[0] in str(caught.value.body)


@pytest.fixture(scope="module")
def isolated_server(tmp_path_factory):
    host = ModelHost()
    host.add(load_model())
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), api_keys=[ADMIN_KEY],
                        prefix_cache_isolation="user")
    with ServerThread(create_app(settings, host=host)) as url:
        yield url


def _user_client(url: str, username: str) -> openai.OpenAI:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=url, headers=admin, timeout=60) as http:
        http.post("/v1/users", json={"username": username, "password": f"{username}-password"}
                  ).raise_for_status()
        key = http.post("/v1/api-keys", json={"username": username}).json()["key"]
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=120)


def test_user_isolation_keeps_tenants_apart_even_with_the_same_salt(isolated_server):
    ann, bob = _user_client(isolated_server, "ann"), _user_client(isolated_server, "bob")
    prompt = _prompt()
    first, cached = _complete(ann, prompt)
    assert cached == 0
    assert _complete(bob, prompt) == (first, 0)
    assert _complete(bob, prompt, cache_salt="shared")[1] == 0
    assert _complete(ann, prompt, cache_salt="shared")[1] == 0  # bob's "shared" is not ann's
    assert _complete(ann, prompt)[1] > 0 and _complete(bob, prompt)[1] > 0  # each reuses their own


def test_serve_refuses_an_unknown_isolation_mode(tmp_path):
    result = subprocess.run([sys.executable, "-m", "app.cli", "serve", "--model", str(MODEL_DIR),
                             "--data-dir", str(tmp_path), "--prefix-cache-isolation", "tenant"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "prefix-cache-isolation" in result.stderr
