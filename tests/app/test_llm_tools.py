"""`LLM.chat(..., tools=...)` offline, as the server does it: the same prompt (tools rendered
through the template or the Hermes layout), a forced choice enforced by the grammar (arguments
validated with `jsonschema`, on the demo model and on a random-weight model where only the
grammar makes them valid), calls read back with `parse_tool_calls`, refusals as ValueError."""
from __future__ import annotations

import json

import jsonschema
import pytest

from app import LLM, SamplingParams, StructuredOutputsParams
from app.demo.recipe import DEMO_MODEL_DIR
from app.serving.chat_template import render_prompt_ids
from tests.app.tool_calls.templates import HERMES_TEMPLATE, MISTRAL_TEMPLATE, random_checkpoint

ADD = {"type": "function", "function": {
    "name": "add", "description": "Add numbers",
    "parameters": {"type": "object", "properties": {"a": {"type": "integer"},
                                                    "b": {"type": "integer"}},
                   "required": ["a", "b"]}}}
CONVERSATIONS = [[{"role": "user", "content": "What is 2 plus 3?"}],
                 [{"role": "user", "content": "Add 10 and 4."}]]
GREEDY = SamplingParams(temperature=0, max_tokens=400)


@pytest.fixture(scope="module", params=["demo", "random-hermes", "random-mistral"])
def llm(request, tmp_path_factory):
    if request.param == "demo":
        return LLM(str(DEMO_MODEL_DIR), dtype="float32", num_threads=1)
    template = MISTRAL_TEMPLATE if request.param == "random-mistral" else HERMES_TEMPLATE
    directory = random_checkpoint(tmp_path_factory.mktemp("m") / "random", template)
    return LLM(str(directory), dtype="float32", num_threads=1)


# "required" with parallel calls allowed: a random-weight model may chain calls until
# max_tokens, so one call here (the server's tests cover parallel calls)
@pytest.mark.parametrize("tool_choice", ["required", {"type": "function",
                                                      "function": {"name": "add"}}])
def test_forced_calls_validate(llm, tool_choice):
    outputs = llm.chat(CONVERSATIONS, GREEDY, use_tqdm=False, tools=[ADD],
                       tool_choice=tool_choice, parallel_tool_calls=False)
    tokenizer = llm.get_tokenizer()
    for conversation, output in zip(CONVERSATIONS, outputs):
        assert output.prompt_token_ids == render_prompt_ids(tokenizer, conversation, [ADD])
        assert output.outputs[0].finish_reason == "stop"
        message = llm.parse_tool_calls(output.outputs[0].text)
        assert message.content is None and len(message.tool_calls) == 1
        for call in message.tool_calls:
            assert call.name == "add" and call.id.startswith("call_")
            jsonschema.validate(json.loads(call.arguments), ADD["function"]["parameters"])


def test_auto_is_free_text_and_none_renders_no_tools(llm):
    tokenizer = llm.get_tokenizer()
    (auto,) = llm.chat(CONVERSATIONS[0], GREEDY, use_tqdm=False, tools=[ADD])
    assert auto.prompt_token_ids == render_prompt_ids(tokenizer, CONVERSATIONS[0], [ADD])
    (none,) = llm.chat(CONVERSATIONS[0], GREEDY, use_tqdm=False, tools=[ADD], tool_choice="none")
    assert none.prompt_token_ids == render_prompt_ids(tokenizer, CONVERSATIONS[0])
    assert len(none.prompt_token_ids) < len(auto.prompt_token_ids)


def test_refusals_are_value_errors(llm):
    with pytest.raises(ValueError, match="tool_choice names the function 'nope'"):
        llm.chat(CONVERSATIONS[0], GREEDY, use_tqdm=False, tools=[ADD],
                 tool_choice={"type": "function", "function": {"name": "nope"}})
    constrained = SamplingParams(max_tokens=5,
                                 structured_outputs=StructuredOutputsParams(choice=["a"]))
    with pytest.raises(ValueError, match="structured_outputs"):
        llm.chat(CONVERSATIONS[0], constrained, use_tqdm=False, tools=[ADD],
                 tool_choice="required")
    with pytest.raises(ValueError, match="chat_template_kwargs may not set messages"):
        llm.chat(CONVERSATIONS[0], GREEDY, use_tqdm=False,
                 chat_template_kwargs={"messages": []})
