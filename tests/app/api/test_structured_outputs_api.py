"""Structured outputs over HTTP, through the official openai client against the live server
(stories260K): response_format json_schema / json_object, the pydantic `parse` path, vLLM's
guided_* extras and structured_outputs on both endpoints, streaming equal to non-streaming, and
bad constraints refused with 400 naming the field."""
from __future__ import annotations

import json
import re

import jsonschema
import openai
import pydantic
import pytest

from tests.app.api.conftest import MODEL_ID

PROMPT = [{"role": "user", "content": "Tell me about a little dog."}]
SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer", "minimum": 0, "maximum": 30},
        "weight": {"type": "number"},
        "color": {"enum": ["brown", "white", "black"]},
        "friends": {"type": "array", "maxItems": 3,
                    "items": {"type": "object",
                              "properties": {"name": {"type": "string", "maxLength": 12},
                                             "cat": {"type": "boolean"}},
                              "required": ["name", "cat"]}},
        "home": {"type": "object", "properties": {"town": {"type": "string", "maxLength": 12}},
                 "required": ["town"]},
    },
    "required": ["name", "age", "weight", "color", "friends", "home"],
}
RESPONSE_FORMAT = {"type": "json_schema",
                   "json_schema": {"name": "dog", "strict": True, "schema": SCHEMA}}


class Friend(pydantic.BaseModel):
    name: str = pydantic.Field(max_length=12)
    cat: bool


class Dog(pydantic.BaseModel):
    name: str = pydantic.Field(max_length=20)
    color: str
    friends: list[Friend] = pydantic.Field(max_length=2)


def test_response_format_json_schema_answers_validate(client):
    for extra in ({"temperature": 0}, {"temperature": 1.0, "seed": 5, "n": 2}):
        reply = client.chat.completions.create(model=MODEL_ID, messages=PROMPT, max_tokens=200,
                                               response_format=RESPONSE_FORMAT, **extra)
        for choice in reply.choices:
            assert choice.finish_reason == "stop", choice.message.content
            jsonschema.validate(json.loads(choice.message.content), SCHEMA)


def test_pydantic_parse_path(client):
    completion = client.beta.chat.completions.parse(model=MODEL_ID, messages=PROMPT, max_tokens=200,
                                                    temperature=0, response_format=Dog)
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, Dog) and all(isinstance(f, Friend) for f in parsed.friends)


def test_json_object_mode_gives_an_object(client):
    """Any object: a story model may write one endless key (then max_tokens cuts it, as OpenAI's
    JSON mode can); a finished answer always parses as an object."""
    free = client.chat.completions.create(model=MODEL_ID, messages=PROMPT, max_tokens=40,
                                          temperature=0).choices[0].message.content
    assert not free.lstrip().startswith("{")
    for seed in range(4):
        reply = client.chat.completions.create(
            model=MODEL_ID, messages=PROMPT, max_tokens=40, temperature=1.0, seed=seed,
            response_format={"type": "json_object"})
        choice = reply.choices[0]
        assert choice.message.content.startswith("{")
        if choice.finish_reason == "stop":
            assert isinstance(json.loads(choice.message.content), dict)
        else:
            assert reply.usage.completion_tokens == 40


def test_streaming_equals_non_streaming(client):
    kwargs = {"model": MODEL_ID, "messages": PROMPT, "max_tokens": 200, "temperature": 0,
              "response_format": RESPONSE_FORMAT}
    whole = client.chat.completions.create(**kwargs).choices[0].message.content
    stream = client.chat.completions.create(stream=True, **kwargs)
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert streamed == whole
    jsonschema.validate(json.loads(streamed), SCHEMA)


@pytest.mark.parametrize(("extra", "check"), [
    ({"guided_json": SCHEMA}, lambda t: jsonschema.validate(json.loads(t), SCHEMA) is None),
    ({"guided_regex": r"[A-Z][a-z]{2,6} [0-9]{2}"},
     lambda t: re.fullmatch(r"[A-Z][a-z]{2,6} [0-9]{2}", t)),
    ({"guided_choice": ["happy", "sad"]}, lambda t: t in ("happy", "sad")),
    ({"guided_grammar": 'root ::= "The " animal " ran."\nanimal ::= "dog" | "cat"'},
     lambda t: t in ("The dog ran.", "The cat ran.")),
    ({"structured_outputs": {"choice": ["up", "down"]}}, lambda t: t in ("up", "down")),
    ({"structured_outputs": {"json": SCHEMA}},
     lambda t: jsonschema.validate(json.loads(t), SCHEMA) is None),
], ids=["guided_json", "guided_regex", "guided_choice", "guided_grammar", "so_choice", "so_json"])
def test_vllm_extras_on_completions_and_chat(client, extra, check):
    text = client.completions.create(model=MODEL_ID, prompt="Once upon a time", max_tokens=200,
                                     temperature=0, extra_body=extra).choices[0].text
    assert check(text), text
    chat = client.chat.completions.create(model=MODEL_ID, messages=PROMPT, max_tokens=200,
                                          temperature=0, extra_body=extra)
    assert check(chat.choices[0].message.content), chat.choices[0].message.content


@pytest.mark.parametrize(("path", "extra", "param"), [
    ("/v1/chat/completions", {"response_format": {"type": "xml"}}, "response_format.type"),
    ("/v1/chat/completions", {"response_format": {"type": "json_schema", "json_schema": {
        "name": "x", "schema": {"type": "object", "properties": {"a": {"type": "foo"}}}}}},
     "response_format"),
    ("/v1/chat/completions", {"response_format": {"type": "json_schema"}},
     "response_format.json_schema"),
    ("/v1/chat/completions", {"response_format": {"type": "json_schema", "json_schema": {
        "name": "x", "schema": {"$ref": "#/$defs/missing"}}}}, "response_format"),
    ("/v1/completions", {"guided_regex": "([a-z"}, "guided_regex"),
    ("/v1/completions", {"guided_grammar": "root ::= undefined"}, "guided_grammar"),
    ("/v1/completions", {"guided_choice": []}, "guided_choice"),
    ("/v1/completions", {"guided_json": "{not json"}, "guided_json"),
    ("/v1/completions", {"guided_json": SCHEMA, "guided_choice": ["a"]}, "guided_choice"),
    ("/v1/completions", {"structured_outputs": {"jsonn": SCHEMA}}, "structured_outputs"),
    ("/v1/chat/completions", {"response_format": {"type": "json_object"}, "guided_regex": "a"},
     "guided_regex"),
])
def test_bad_constraints_are_400_naming_the_field(client, path, extra, param):
    body = {"model": MODEL_ID, "max_tokens": 5, **extra}
    body |= ({"messages": PROMPT} if "chat" in path else {"prompt": "Once"})
    with pytest.raises(openai.BadRequestError) as e:
        client.post(path.removeprefix("/v1"), body=body, cast_to=object)
    error = e.value.body
    assert error["param"] == param, error
    assert "pydantic" not in error["message"].lower() and "[" not in error["message"][:1]
