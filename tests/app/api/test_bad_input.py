"""Bad requests get 4xx with OpenAI's error body and leave nothing in the store."""
from __future__ import annotations

import json

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
    # meaningless sampling values (stories260K has 512 tokens)
    ({"model": MODEL_ID, "messages": MESSAGES, "stop_token_ids": [512]}, "stop_token_ids"),
    ({"model": MODEL_ID, "messages": MESSAGES, "stop_token_ids": [10**12]}, "stop_token_ids"),
    ({"model": MODEL_ID, "messages": MESSAGES, "stop_token_ids": [1.5]}, "stop_token_ids"),
    ({"model": MODEL_ID, "messages": MESSAGES, "top_k": 10**15}, "top_k"),
    ({"model": MODEL_ID, "messages": MESSAGES, "top_k": 513}, "top_k"),
    ({"model": MODEL_ID, "messages": MESSAGES, "top_k": -2}, "top_k"),
    ({"model": MODEL_ID, "messages": MESSAGES, "repetition_penalty": 1e-300}, "repetition_penalty"),
    ({"model": MODEL_ID, "messages": MESSAGES, "repetition_penalty": 0}, "repetition_penalty"),
    ({"model": MODEL_ID, "messages": MESSAGES, "repetition_penalty": 1e300}, "repetition_penalty"),
    ({"model": MODEL_ID, "messages": MESSAGES, "max_tokens": 5, "min_tokens": 6}, "min_tokens"),
    ({"model": MODEL_ID, "messages": MESSAGES, "logprobs": True, "top_logprobs": 21},
     "top_logprobs"),
    # content: null is OpenAI's only for an assistant turn with tool_calls
    ({"model": MODEL_ID, "messages": [{"role": "user", "content": None}]}, "messages.0"),
    ({"model": MODEL_ID, "messages": [{"role": "user"}]}, "messages.0"),
    ({"model": MODEL_ID, "messages": [{"role": "system", "content": None}, *MESSAGES]},
     "messages.0"),
    ({"model": MODEL_ID,
      "messages": [*MESSAGES, {"role": "assistant", "content": None}, *MESSAGES]}, "messages.1"),
    ({"model": MODEL_ID, "messages": [{"role": "user", "content": "x" * 1_000_001}]}, "messages"),
    ({"model": MODEL_ID, "messages": [{"role": "user", "content": "x" * 600_000}] * 2}, "messages"),
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
    {"model": MODEL_ID, "prompt": "hi", "max_tokens": 0},  # nothing to generate without echo
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


def _raw_post(http, path: str, body: dict):
    """POST `body` as JSON with non-ASCII escaped, the way a lone surrogate travels ("\\ud800");
    httpx's own encoder writes UTF-8, which cannot carry one."""
    return http.post(path, content=json.dumps(body).encode("ascii"),
                     headers={"content-type": "application/json"})


@pytest.mark.parametrize(("path", "body", "param"), [
    ("/v1/chat/completions", {"model": MODEL_ID, "messages": [
        {"role": "user", "content": "a\ud800b"}]}, "messages.0.content"),
    ("/v1/chat/completions", {"model": MODEL_ID, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "\udfff"}]}]}, "messages.0.content"),
    ("/v1/chat/completions", {"model": MODEL_ID, "messages": MESSAGES, "stop": ["\ud83d"]}, "stop"),
    ("/v1/completions", {"model": MODEL_ID, "prompt": "x\udc80"}, "prompt"),
])
def test_lone_surrogates_are_400(http, live_server, path, body, param):
    before = _stored(live_server)
    error = _assert_openai_error(_raw_post(http, path, body), 400)
    assert (error["param"] or "").startswith(param), error
    assert "Unicode" in error["message"]
    assert _stored(live_server) == before


def test_a_surrogate_pair_is_one_character_and_fine(http):
    body = {"model": MODEL_ID, "messages": [{"role": "user", "content": "\U0001F600"}],
            "max_tokens": 2}
    assert _raw_post(http, "/v1/chat/completions", body).status_code == 200


def test_invalid_utf8_in_the_body_is_400(http):
    body = (b'{"model": "%s", "messages": [{"role": "user", "content": "\xff\xfe"}]}'
            % MODEL_ID.encode())
    _assert_openai_error(http.post("/v1/chat/completions", content=body,
                                   headers={"content-type": "application/json"}), 400)


@pytest.mark.parametrize("extra", [
    {"top_k": -1}, {"top_k": 0}, {"top_k": 512}, {"stop_token_ids": [511, 0]},
    {"repetition_penalty": 0.01}, {"repetition_penalty": 10},
    {"messages": [*MESSAGES, {"role": "assistant", "content": None,
                              "tool_calls": [{"id": "call_1", "type": "function",
                                              "function": {"name": "f", "arguments": "{}"}}]},
                  {"role": "tool", "content": "42", "tool_call_id": "call_1"}]},
])
def test_values_at_the_bounds_are_accepted(http, live_server, extra):
    assert live_server.model.tokenizer.vocab_size == 512  # the bounds above are this vocabulary's
    body = {"model": MODEL_ID, "messages": MESSAGES, "max_tokens": 2, **extra}
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
