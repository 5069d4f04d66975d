"""LiteLLM (the real package, its OpenAI-compatible provider) against the live server on
stories260K: JSON mode now constrains the answer, and text_completion with a prompt list answers
each prompt as the official openai client's /v1/completions does."""
from __future__ import annotations

import json
import os

import pytest

from tests.app.api.conftest import MODEL_ID

# LiteLLM fetches a model price list from the internet at import unless told to use its own copy
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
litellm = pytest.importorskip("litellm")

PROMPT = [{"role": "user", "content": "Once upon a time, there was a little dog."}]


def _provider(live_server) -> dict:
    return {"model": f"openai/{MODEL_ID}", "api_base": f"{live_server.url}/v1",
            "api_key": "unused", "num_retries": 0}


def test_json_mode_gives_an_object(live_server, client):
    free = client.chat.completions.create(model=MODEL_ID, messages=PROMPT, max_tokens=40,
                                          temperature=0).choices[0].message.content
    assert not free.lstrip().startswith("{")  # without the constraint this model tells a story
    for seed in range(3):
        reply = litellm.completion(**_provider(live_server), messages=PROMPT, max_tokens=40,
                                   temperature=1.0, seed=seed,
                                   response_format={"type": "json_object"})
        choice = reply.choices[0]
        assert choice.message.content.startswith("{")
        if choice.finish_reason == "stop":
            assert isinstance(json.loads(choice.message.content), dict)


def test_text_completion_with_a_prompt_list_matches_the_openai_client(live_server, client):
    prompts = ["Once upon a time", "Lily went to the park"]
    reply = litellm.text_completion(**_provider(live_server), prompt=prompts, max_tokens=8,
                                    temperature=0)
    expected = client.completions.create(model=MODEL_ID, prompt=prompts, max_tokens=8,
                                         temperature=0)
    assert [c.text for c in reply.choices] == [c.text for c in expected.choices]
    assert len(reply.choices) == 2 and all(c.text for c in reply.choices)
