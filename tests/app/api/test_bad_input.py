"""Bad requests get 4xx with OpenAI's error body and leave nothing in the store."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.store.models import Conversation, Message
from tests.app.api.conftest import MODEL_ID

MESSAGES = [{"role": "user", "content": "hi"}]

BAD_CHAT_BODIES = [
    ({"model": MODEL_ID, "messages": "hi"}, "messages"),
    ({"model": MODEL_ID, "messages": []}, "messages"),
    ({"model": MODEL_ID, "messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role"),
    ({"model": MODEL_ID, "messages": [{"content": "hi"}]}, "messages.0.role"),
    ({"model": MODEL_ID}, "messages"),
    ({"messages": MESSAGES}, "model"),
    ({"model": MODEL_ID, "messages": MESSAGES, "max_tokens": "10"}, "max_tokens"),
    ({"model": MODEL_ID, "messages": MESSAGES, "max_tokens": 0}, "max_tokens"),
    ({"model": MODEL_ID, "messages": MESSAGES, "max_tokens": 10**9}, "max_tokens"),
    ({"model": MODEL_ID, "messages": MESSAGES, "max_completion_tokens": 10**6}, "max_completion_tokens"),
    ({"model": MODEL_ID, "messages": MESSAGES, "temperature": 5}, "temperature"),
    ({"model": MODEL_ID, "messages": MESSAGES, "top_p": 0}, "top_p"),
    ({"model": MODEL_ID, "messages": MESSAGES, "n": 0}, "n"),
    ({"model": MODEL_ID, "messages": MESSAGES, "stop": [""]}, "stop.str"),
    ({"model": MODEL_ID, "messages": MESSAGES, "stream": "yes"}, "stream"),
    ({"model": MODEL_ID, "messages": MESSAGES, "frequency_penalty": 3}, "frequency_penalty"),
    ({"model": MODEL_ID, "messages": MESSAGES, "top_logprobs": 2}, None),
    ({"model": MODEL_ID, "messages": MESSAGES, "unknown_field": 1}, "unknown_field"),
    ({"model": MODEL_ID, "messages": MESSAGES, "stream_options": {"bogus": True}}, "stream_options.bogus"),
    ({"model": MODEL_ID, "messages": [{"role": "user", "content": "word " * 2000}]}, "messages"),
    ({"model": MODEL_ID, "messages": MESSAGES, "conversation_id": "conv_missing"}, "conversation_id"),
    ({"model": MODEL_ID, "messages": MESSAGES, "regenerate_of": "msg_missing"}, "regenerate_of"),
]


def _stored(live_server) -> tuple[int, int]:
    live_server.state.writer.flush(10)
    with live_server.state.store.session_factory() as session:
        return (session.scalar(select(func.count()).select_from(Conversation)),
                session.scalar(select(func.count()).select_from(Message)))


def _assert_openai_error(response, status: int | None = None) -> dict:
    assert 400 <= response.status_code < 500, response.text
    if status is not None:
        assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return error


@pytest.mark.parametrize(("body", "param"), BAD_CHAT_BODIES)
def test_bad_chat_requests_are_4xx_with_the_param(http, live_server, body, param):
    before = _stored(live_server)
    error = _assert_openai_error(http.post("/v1/chat/completions", json=body))
    if param is not None:
        assert (error["param"] or "").startswith(param.split(".")[0]), error
    assert _stored(live_server) == before


def test_malformed_json_is_400(http):
    response = http.post("/v1/chat/completions", content=b'{"model": ',
                         headers={"content-type": "application/json"})
    assert _assert_openai_error(response, 400)["code"] == "invalid_json"


def test_unknown_field_message_names_it(http):
    error = _assert_openai_error(http.post("/v1/chat/completions", json={
        "model": MODEL_ID, "messages": MESSAGES, "foo": 1}), 400)
    assert error["message"] == "Unrecognized request argument supplied: foo"


@pytest.mark.parametrize("body", [
    {"model": MODEL_ID, "prompt": [1, 10**6]},
    {"model": MODEL_ID, "prompt": []},
    {"model": MODEL_ID, "prompt": 5},
    {"model": MODEL_ID, "prompt": "hi", "echo": True},
    {"model": MODEL_ID, "prompt": "hi", "logprobs": 9},
    {"model": MODEL_ID, "prompt": [7] * 600},
])
def test_bad_completion_requests(http, live_server, body):
    before = _stored(live_server)
    _assert_openai_error(http.post("/v1/completions", json=body), 400)
    assert _stored(live_server) == before


def test_unknown_model_is_404_and_unknown_route_is_openai_shaped(http):
    error = _assert_openai_error(http.post("/v1/chat/completions",
                                           json={"model": "nope", "messages": MESSAGES}), 404)
    assert error["param"] == "model" and error["code"] == "model_not_found"
    _assert_openai_error(http.get("/v1/nothing-here"), 404)
    _assert_openai_error(http.get("/v1/chat/completions"), 405)


def test_a_good_request_stores_one_exchange(http, live_server):
    before = _stored(live_server)
    response = http.post("/v1/chat/completions", json={"model": MODEL_ID, "messages": MESSAGES,
                                                       "max_tokens": 3})
    assert response.status_code == 200
    conversations, messages = _stored(live_server)
    assert (conversations, messages) == (before[0] + 1, before[1] + 2)


def test_unknown_message_fields_are_rejected_like_openai(http):
    body = {"model": MODEL_ID, "messages": [{"role": "user", "content": "hi", "mood": "happy"}]}
    error = _assert_openai_error(http.post("/v1/chat/completions", json=body), 400)
    assert error["param"] == "messages.0.mood"
