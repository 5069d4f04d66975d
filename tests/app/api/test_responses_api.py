"""POST/GET /v1/responses through the official openai client (and LangChain's Responses path)
against the live server on stories260K. The reference for every answer is the same
conversation sent to /v1/chat/completions, greedy: both must give the same text."""
from __future__ import annotations

import json

import jsonschema
import openai
import pytest

from tests.app.api.conftest import MODEL_ID

STORY = "Once upon a time, there was a little dog."
SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12},
                                           "age": {"type": "integer", "minimum": 0,
                                                                   "maximum": 120}},
          "required": ["name", "age"], "additionalProperties": False}


def _chat(client, messages: list[dict], max_tokens: int) -> openai.types.chat.ChatCompletion:
    return client.chat.completions.create(model=MODEL_ID, messages=messages,
                                          max_tokens=max_tokens, temperature=0)


def test_a_string_input_answers_like_chat(client):
    response = client.responses.create(model=MODEL_ID, input=STORY, max_output_tokens=12,
                                       temperature=0)
    chat = _chat(client, [{"role": "user", "content": STORY}], 12)
    assert response.object == "response" and response.id.startswith("resp_")
    assert response.output_text == chat.choices[0].message.content
    assert response.output[0].type == "message" and response.output[0].role == "assistant"
    assert response.usage.input_tokens == chat.usage.prompt_tokens
    assert response.usage.output_tokens == chat.usage.completion_tokens
    assert response.status == ("incomplete" if chat.choices[0].finish_reason == "length"
                               else "completed")


def test_instructions_and_message_input_render_like_a_system_message(client):
    messages = [{"role": "user", "content": [{"type": "input_text", "text": "Tom had a ball."}]},
                {"role": "assistant", "content": [{"type": "output_text", "text": "He ran."}]},
                {"role": "user", "content": "Then what?"}]
    response = client.responses.create(model=MODEL_ID, instructions="Tell a story.",
                                       input=messages, max_output_tokens=10, temperature=0)
    chat = _chat(client, [{"role": "system", "content": "Tell a story."},
                          {"role": "user", "content": "Tom had a ball."},
                          {"role": "assistant", "content": "He ran."},
                          {"role": "user", "content": "Then what?"}], 10)
    assert response.output_text == chat.choices[0].message.content
    assert response.instructions == "Tell a story."


def test_the_stream_is_openais_event_sequence_and_joins_to_the_answer(client):
    full = client.responses.create(model=MODEL_ID, input=STORY, max_output_tokens=16,
                                   temperature=0)
    events = list(client.responses.create(model=MODEL_ID, input=STORY, max_output_tokens=16,
                                          temperature=0, stream=True))
    types = [e.type for e in events]
    final = "response.incomplete" if full.status == "incomplete" else "response.completed"
    assert types[:4] == ["response.created", "response.in_progress",
                         "response.output_item.added", "response.content_part.added"]
    assert types[-4:] == ["response.output_text.done", "response.content_part.done",
                          "response.output_item.done", final]
    assert set(types[4:-4]) == {"response.output_text.delta"}
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == full.output_text == events[-4].text
    assert events[-1].response.output_text == full.output_text
    assert events[-1].response.usage.output_tokens == full.usage.output_tokens


def test_previous_response_id_continues_the_stored_thread(client, http):
    first = client.responses.create(model=MODEL_ID, input="Lily saw a cat.",
                                    max_output_tokens=8, temperature=0)
    second = client.responses.create(model=MODEL_ID, input="What did she do?",
                                     previous_response_id=first.id, max_output_tokens=8,
                                     temperature=0)
    chat = _chat(client, [{"role": "user", "content": "Lily saw a cat."},
                          {"role": "assistant", "content": first.output_text},
                          {"role": "user", "content": "What did she do?"}], 8)
    assert second.output_text == chat.choices[0].message.content
    assert second.previous_response_id == first.id
    assert second.model_extra["conversation_id"] == first.model_extra["conversation_id"]
    again = client.responses.retrieve(second.id)
    assert again.output_text == second.output_text and again.id == second.id
    # the stored conversation holds the whole thread, in order
    conversation = http.get(f"/v1/conversations/{first.model_extra['conversation_id']}").json()
    assert [(m["role"], m["content"]) for m in conversation["messages"]] == [
        ("user", "Lily saw a cat."), ("assistant", first.output_text),
        ("user", "What did she do?"), ("assistant", second.output_text)]


def test_unknown_and_unstored_responses_are_404_naming_the_param(client):
    unstored = client.responses.create(model=MODEL_ID, input=STORY, max_output_tokens=2,
                                       store=False)
    for response_id in ("resp_0123", unstored.id, "chatcmpl-1"):
        with pytest.raises(openai.NotFoundError) as e:
            client.responses.create(model=MODEL_ID, input="hi", previous_response_id=response_id)
        assert e.value.body["param"] == "previous_response_id"
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(response_id)


def test_text_format_json_schema_makes_the_output_validate(client):
    """stories260K writes stories; only the constraint can make this JSON."""
    text_format = {"type": "json_schema", "name": "person", "schema": SCHEMA, "strict": True}
    kwargs = {"model": MODEL_ID, "input": "Describe a person as JSON.",
              "text": {"format": text_format}, "max_output_tokens": 200, "temperature": 0}
    response = client.responses.create(**kwargs)
    assert response.status == "completed" and response.text.format.type == "json_schema"
    jsonschema.validate(json.loads(response.output_text), SCHEMA)
    streamed = "".join(e.delta for e in client.responses.create(**kwargs, stream=True)
                       if e.type == "response.output_text.delta")
    assert streamed == response.output_text


def test_text_format_json_object_gives_an_object(client):
    """Any object: a story model may write one endless key (then the limit cuts it); a finished
    answer always parses as an object."""
    for seed in range(3):
        response = client.responses.create(
            model=MODEL_ID, input=STORY, text={"format": {"type": "json_object"}},
            max_output_tokens=40, temperature=1.0, extra_body={"seed": seed})
        assert response.output_text.startswith("{")
        if response.status == "completed":
            assert isinstance(json.loads(response.output_text), dict)
        else:
            assert response.usage.output_tokens == 40


@pytest.mark.parametrize(("body", "param"), [
    ({"input": "hi", "tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"input": "hi", "tools": [{"type": "function", "name": "f", "parameters": {"type": 3}}]},
     "tools[0].parameters"),
    ({"input": "hi", "tool_choice": "required"}, "tool_choice"),
    ({"input": [{"type": "reasoning", "summary": []}]}, "input.0.type"),
    ({"input": "hi", "background": True}, "background"),
    ({"input": []}, "input"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
     "input.0.content"),
    ({"input": "hi", "text": {"format": {"type": "json_schema", "name": "x"}}},
     "text.format.schema"),
    ({"input": "hi", "text": {"format": {"type": "json_schema", "name": "x",
                                         "schema": {"type": "object", "properties": 3}}}},
     "text.format.schema"),
    ({"input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
    ({"input": "hi", "max_output_tokens": 10**6}, "max_output_tokens"),
    ({"input": "hi", "temperature": 3}, "temperature"),
    ({"input": "hi", "conversation": "c"}, "conversation"),
])
def test_bad_requests_are_400_naming_the_param(http, body, param):
    response = http.post("/v1/responses", json={"model": MODEL_ID, **body})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"].startswith(param), error
    assert "Input should" not in error["message"] and "Value error" not in error["message"]


ADD = {"type": "function", "name": "add", "description": "Add two integers.",
       "parameters": {"type": "object",
                      "properties": {"a": {"type": "integer", "minimum": 0, "maximum": 99},
                                     "b": {"type": "integer", "minimum": 0, "maximum": 99}},
                      "required": ["a", "b"], "additionalProperties": False}}
CHAT_ADD = {"type": "function", "function": {k: v for k, v in ADD.items() if k != "type"}}


@pytest.mark.parametrize(("choice", "chat_choice"), [
    ("required", "required"),
    ({"type": "function", "name": "add"}, {"type": "function", "function": {"name": "add"}}),
])
def test_a_forced_function_call_is_a_function_call_item_like_chats(client, choice, chat_choice):
    """stories260K never calls tools by itself; the forced choice's grammar makes it, with
    arguments that validate, and the call is the one chat makes for the same conversation."""
    response = client.responses.create(model=MODEL_ID, input="What is 2 plus 3?", tools=[ADD],
                                       tool_choice=choice, max_output_tokens=120, temperature=0)
    (call,) = [item for item in response.output if item.type == "function_call"]
    jsonschema.validate(json.loads(call.arguments), ADD["parameters"])
    chat = client.chat.completions.create(
        model=MODEL_ID, messages=[{"role": "user", "content": "What is 2 plus 3?"}],
        tools=[CHAT_ADD], tool_choice=chat_choice, max_tokens=120, temperature=0)
    (chat_call,) = chat.choices[0].message.tool_calls
    assert (call.name, call.arguments) == (chat_call.function.name, chat_call.function.arguments)
    assert call.call_id.startswith("call_") and response.tools[0].name == "add"
    events = list(client.responses.create(model=MODEL_ID, input="What is 2 plus 3?", tools=[ADD],
                                          tool_choice=choice, max_output_tokens=120,
                                          temperature=0, stream=True))
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert [e.arguments for e in done] == [call.arguments]
    assert events[-1].type == "response.completed"
    assert [i.type for i in events[-1].response.output] == [i.type for i in response.output]


def test_function_call_output_continues_after_the_call(client):
    first = client.responses.create(model=MODEL_ID, input="What is 2 plus 3?", tools=[ADD],
                                    tool_choice="required", max_output_tokens=120, temperature=0)
    (call,) = [item for item in first.output if item.type == "function_call"]
    result = {"type": "function_call_output", "call_id": call.call_id, "output": "5"}
    # stories260K's context is 512 tokens; the tool section alone takes ~300, so the follow-ups
    # leave tools out (the history still holds the call and its result)
    followed = client.responses.create(model=MODEL_ID, previous_response_id=first.id,
                                       input=[result], max_output_tokens=8, temperature=0)
    replayed = client.responses.create(
        model=MODEL_ID, max_output_tokens=8, temperature=0,
        input=[{"role": "user", "content": "What is 2 plus 3?"},
               {"type": "function_call", "call_id": call.call_id, "name": call.name,
                "arguments": call.arguments}, result])
    assert followed.status in ("completed", "incomplete") and followed.output
    assert replayed.status in ("completed", "incomplete") and replayed.output
    assert followed.model_extra["conversation_id"] == first.model_extra["conversation_id"]


def test_langchain_use_responses_api_invokes_and_streams(live_server, client):
    langchain_openai = pytest.importorskip("langchain_openai")
    llm = langchain_openai.ChatOpenAI(model=MODEL_ID, base_url=f"{live_server.url}/v1",
                                      api_key="unused", use_responses_api=True, temperature=0,
                                      max_tokens=10, max_retries=0)
    reply = llm.invoke(STORY)
    expected = client.responses.create(model=MODEL_ID, input=STORY, max_output_tokens=10,
                                       temperature=0).output_text
    assert reply.text == expected
    assert reply.usage_metadata["output_tokens"] >= 1
    assert "".join(chunk.text for chunk in llm.stream(STORY)) == expected


def test_langchain_responses_api_bind_tools_gets_the_forced_call(live_server, client):
    langchain_openai = pytest.importorskip("langchain_openai")
    llm = langchain_openai.ChatOpenAI(model=MODEL_ID, base_url=f"{live_server.url}/v1",
                                      api_key="unused", use_responses_api=True, temperature=0,
                                      max_tokens=120, max_retries=0)
    reply = llm.bind_tools([ADD], tool_choice="add").invoke("What is 2 plus 3?")
    (call,) = reply.tool_calls
    expected = client.responses.create(model=MODEL_ID, input="What is 2 plus 3?", tools=[ADD],
                                       tool_choice={"type": "function", "name": "add"},
                                       max_output_tokens=120, temperature=0)
    (expected_call,) = [item for item in expected.output if item.type == "function_call"]
    assert call["name"] == "add" and call["args"] == json.loads(expected_call.arguments)
