"""Every refusal from chat and completions names its `param` and reads as this server's words:
no validation-library wording ("Value error, ...", "Input should be ...", "Field required")
reaches a client."""
from __future__ import annotations

import pytest

from tests.app.api.conftest import MODEL_ID
from tests.app.api.test_bad_input import BAD_CHAT_BODIES, MESSAGES

LIBRARY_WORDING = ("Value error", "Input should", "Field required", "pydantic", "validation error",
                   "function-after", "constrained-str")

BAD_COMPLETION_BODIES = [
    ({"model": MODEL_ID, "prompt": 5}, "prompt", "prompt must be a string or an array"),
    ({"model": MODEL_ID, "prompt": []}, "prompt", None),
    ({"model": MODEL_ID, "prompt": "hi", "max_tokens": 0}, "max_tokens", "only allowed with echo"),
    ({"model": MODEL_ID, "prompt": "hi", "suffix": "x"}, "suffix", "suffix is not supported"),
    ({"model": MODEL_ID, "prompt": "hi", "best_of": 2}, "best_of", None),
    ({"model": MODEL_ID, "prompt": "hi", "logprobs": 9}, "logprobs",
     "logprobs must be <= 5, got 9"),
    ({"model": MODEL_ID, "prompt": "hi", "echo": "yes"}, "echo", "echo must be a boolean"),
    ({"model": MODEL_ID}, "prompt", "prompt is required"),
]
MORE_CHAT_BODIES = [
    ({"model": MODEL_ID, "messages": MESSAGES, "top_logprobs": 2}, "top_logprobs",
     "top_logprobs requires logprobs=true"),
    ({"model": MODEL_ID, "messages": MESSAGES, "temperature": 5}, "temperature",
     "temperature must be <= 2.0, got 5"),
    ({"model": MODEL_ID, "messages": MESSAGES, "n": 0}, "n", "n must be >= 1, got 0"),
    ({"model": MODEL_ID, "messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role",
     "messages.0.role must be one of"),
    ({"model": MODEL_ID, "messages": [{"role": "user"}]}, "messages.0.content",
     "content is required for a user message"),
    ({"model": MODEL_ID, "messages": "hi"}, "messages", "messages must be an array"),
    ({"model": MODEL_ID, "messages": MESSAGES, "max_tokens": "10"}, "max_tokens",
     "max_tokens must be an integer, got '10'"),
]


def _refusal(response) -> dict:
    assert 400 <= response.status_code < 500, response.text
    error = response.json()["error"]
    assert error["param"], error
    assert not any(w.lower() in error["message"].lower() for w in LIBRARY_WORDING), error
    return error


@pytest.mark.parametrize(("body", "_param"), BAD_CHAT_BODIES)
def test_every_bad_chat_request_names_its_param_in_plain_words(http, body, _param):
    _refusal(http.post("/v1/chat/completions", json=body))


@pytest.mark.parametrize(("body", "param", "words"), MORE_CHAT_BODIES)
def test_chat_refusals_say_what_the_field_must_be(http, body, param, words):
    error = _refusal(http.post("/v1/chat/completions", json=body))
    assert error["param"] == param and words in error["message"], error


@pytest.mark.parametrize(("body", "param", "words"), BAD_COMPLETION_BODIES)
def test_completion_refusals_name_their_param(http, body, param, words):
    error = _refusal(http.post("/v1/completions", json=body))
    assert error["param"] == param, error
    assert words is None or words in error["message"], error
