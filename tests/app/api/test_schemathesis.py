"""Property-based requests generated from the app's own OpenAPI schema against the live server:
never a 5xx, and every 4xx carries OpenAI's error body. Bounded to a few examples per operation.
Then message contents and prompts of arbitrary Unicode (lone surrogates and nulls included): 200
exactly when Python's UTF-8 codec and OpenAI's null rule accept them, else 400 naming the field.

(Uses `as_strategy()` per operation rather than schemathesis' pytest plugin, whose subtests do not
run under this pytest version.)
"""
from __future__ import annotations

import json

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from app.api.main import create_app
from app.core.config import Settings
from tests.app.api.conftest import MODEL_ID

SCHEMA = schemathesis.openapi.from_dict(create_app(Settings()).openapi())
OPERATIONS = {op.label: op for op in (result.ok() for result in SCHEMA.get_all_operations())}


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_no_server_errors_and_openai_error_bodies(live_server, label):
    @given(case=OPERATIONS[label].as_strategy())
    @settings(max_examples=8, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case):
        response = case.call(base_url=live_server.url, timeout=120)
        case.validate_response(response, checks=[not_a_server_error])
        if 400 <= response.status_code < 500:
            assert set(response.json()["error"]) == {"message", "type", "param", "code"}

    check()


# -- message contents: arbitrary Unicode, lone surrogates and nulls included -------------------
def _with_surrogate(text: str, surrogate: str, insert: bool, at: int) -> str:
    at %= len(text) + 1
    return text[:at] + surrogate + text[at:] if insert else text


# About half the texts carry a lone surrogate (Hypothesis' text() never generates one); JSON
# carries it as a "\udXXX" escape.
TEXT = st.builds(_with_surrogate, st.text(st.characters(codec=None), max_size=24),
                 st.characters(categories=["Cs"]), st.booleans(), st.integers(0, 24))
CONTENT = st.one_of(TEXT, st.lists(st.builds(lambda t: {"type": "text", "text": t}, TEXT),
                                   min_size=1, max_size=2), st.none())
MESSAGE = st.fixed_dictionaries({"role": st.sampled_from(["system", "developer", "user",
                                                           "assistant", "tool"]),
                                 "content": CONTENT})


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")  # the reference: Python's own strict UTF-8 codec
    except UnicodeEncodeError:
        return False
    return True


def _acceptable(message: dict) -> bool:
    """OpenAI's rule (null content only on an assistant turn with tool_calls; none here) and valid
    Unicode in every text."""
    content = message["content"]
    if content is None:
        return False
    texts = [content] if isinstance(content, str) else [part["text"] for part in content]
    return all(_encodable(t) for t in texts)


def _post_ascii_json(url: str, path: str, body: dict) -> httpx.Response:
    return httpx.post(f"{url}{path}", content=json.dumps(body).encode("ascii"),
                      headers={"content-type": "application/json"}, timeout=120)


def _assert_openai_400(response: httpx.Response, param_prefix: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["param"] or "").startswith(param_prefix), error


def test_chat_message_contents(live_server):
    outcomes = []

    @given(messages=st.lists(MESSAGE, min_size=1, max_size=3))
    @settings(max_examples=40, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(messages):
        response = _post_ascii_json(live_server.url, "/v1/chat/completions",
                                    {"model": MODEL_ID, "messages": messages, "max_tokens": 1})
        outcomes.append(all(_acceptable(m) for m in messages))
        if outcomes[-1]:
            # many multi-byte characters can still overflow the tiny model's 512-token context
            assert response.status_code == 200 or (
                response.status_code == 400
                and response.json()["error"]["code"] == "context_length_exceeded"), response.text
        else:
            _assert_openai_400(response, "messages")

    check()
    assert 0 < sum(outcomes) < len(outcomes)  # both kinds of input were tried


def test_completion_prompts(live_server):
    outcomes = []

    @given(prompt=TEXT)
    @settings(max_examples=25, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(prompt):
        response = _post_ascii_json(live_server.url, "/v1/completions",
                                    {"model": MODEL_ID, "prompt": prompt, "max_tokens": 1})
        outcomes.append(_encodable(prompt))
        if outcomes[-1]:
            assert response.status_code == 200, response.text
        else:
            _assert_openai_400(response, "prompt")

    check()
    assert 0 < sum(outcomes) < len(outcomes)
