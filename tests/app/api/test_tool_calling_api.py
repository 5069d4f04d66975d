"""Tool calling over HTTP against one live server (started once for this module) serving three
models: the demo model (its template has no tool section: the Hermes layout), and three
random-weight models whose templates render tools themselves: Hermes-style, Llama 3 JSON-style
and Mistral v3-style (whose template refuses call ids that are not 9 characters). On a random-weight model only the grammar can make a call valid, so every forced
call parsing and validating (with `jsonschema`) shows the constraint at work.

Clients: the official `openai` client and LangChain's `ChatOpenAI` (`bind_tools`,
`with_structured_output`), plus raw HTTP for refusals."""
from __future__ import annotations

import json
import re

import httpx
import jsonschema
import openai
import pydantic
import pytest

from app.api.main import create_app
from app.core.config import Settings
from app.demo.recipe import DEMO_MODEL_DIR
from app.serving.loading import load_served_model
from app.serving.model_host import ModelHost
from shared import EngineConfig
from tests.app.api.conftest import ServerThread
from tests.app.tool_calls.templates import (HERMES_TEMPLATE, LLAMA3_TEMPLATE, MISTRAL_TEMPLATE,
                                           random_checkpoint)

DEMO, RANDOM_HERMES, RANDOM_LLAMA3 = "demo", "random-hermes", "random-llama3"
RANDOM_MISTRAL = "random-mistral"
MODELS = [DEMO, RANDOM_HERMES, RANDOM_LLAMA3, RANDOM_MISTRAL]
# small: the demo model's context is 512 tokens, and JSON costs about a token per character in
# its vocabulary (both tools shown: 394 prompt tokens)
ADD = {"type": "function", "function": {
    "name": "add", "description": "Add numbers",
    "parameters": {"type": "object", "properties": {"a": {"type": "integer"},
                                                    "b": {"type": "integer"}},
                   "required": ["a", "b"]}}}
CONVERT = {"type": "function", "function": {
    "name": "convert", "description": "Convert a distance",
    "parameters": {"type": "object", "properties": {"value": {"type": "number"},
                                                    "unit": {"enum": ["km", "mi"]}},
                   "required": ["value", "unit"]}}}
TOOLS = [ADD, CONVERT]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
QUESTION = [{"role": "user", "content": "What is 2 plus 3?"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("tool_models")
    config = EngineConfig(num_kv_blocks=512, max_num_seqs=16)
    host = ModelHost()
    host.add(load_served_model(DEMO_MODEL_DIR, config, model_id=DEMO))
    for model_id, template, seed in ((RANDOM_HERMES, HERMES_TEMPLATE, 3),
                                     (RANDOM_LLAMA3, LLAMA3_TEMPLATE, 4),
                                     (RANDOM_MISTRAL, MISTRAL_TEMPLATE, 5)):
        directory = random_checkpoint(root / model_id, template, seed=seed)
        host.add(load_served_model(directory, config, model_id=model_id))
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("data")), host=host)
    with ServerThread(app) as url:
        yield url


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0, timeout=120)


def _assert_valid_calls(message, allowed: set[str]) -> list[tuple[str, dict]]:
    assert message.content is None and message.tool_calls
    calls = []
    for call in message.tool_calls:
        assert call.id.startswith("call_") and call.type == "function"
        assert call.function.name in allowed
        arguments = json.loads(call.function.arguments)
        jsonschema.validate(arguments, SCHEMAS[call.function.name])
        calls.append((call.function.name, arguments))
    return calls


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("choice", ["required", "named"])
def test_forced_calls_parse_and_validate(client, model, choice):
    tool_choice = ("required" if choice == "required"
                   else {"type": "function", "function": {"name": "convert"}})
    allowed = {"add", "convert"} if choice == "required" else {"convert"}
    for extra in ({"temperature": 0}, {"temperature": 1.0, "seed": 7, "n": 2}):
        reply = client.chat.completions.create(model=model, messages=QUESTION, tools=TOOLS,
                                               tool_choice=tool_choice, **extra)
        for choice_ in reply.choices:
            if choice_.finish_reason == "length" and choice == "required":
                # parallel calls: a random-weight model chains some (4 at most here, in 350
                # tokens); one that chained past the context has only its last call cut short
                assert len(choice_.message.tool_calls) > 1
                choice_.message.tool_calls.pop()
            else:
                assert choice_.finish_reason == "tool_calls"
            calls = _assert_valid_calls(choice_.message, allowed)
            if choice == "named":
                assert len(calls) == 1


def test_random_weights_write_no_call_without_the_grammar(client):
    """The same model, tools shown but nothing forced: no valid call comes out (so the forced
    calls above are the grammar's doing)."""
    for model in (RANDOM_HERMES, RANDOM_LLAMA3, RANDOM_MISTRAL):
        reply = client.chat.completions.create(model=model, messages=QUESTION, tools=TOOLS,
                                               max_tokens=60, temperature=0)
        assert not reply.choices[0].message.tool_calls
        assert reply.choices[0].finish_reason in ("stop", "length")
        assert reply.choices[0].message.content


@pytest.mark.parametrize("model", MODELS)
def test_parallel_tool_calls_false_gives_one_call(client, model):
    for seed in range(3):
        reply = client.chat.completions.create(
            model=model, messages=QUESTION, tools=TOOLS, tool_choice="required",
            parallel_tool_calls=False, temperature=1.0, seed=seed)
        assert len(_assert_valid_calls(reply.choices[0].message, {"add", "convert"})) == 1


@pytest.mark.parametrize("model", MODELS)
def test_streaming_equals_non_streaming(client, model):
    kwargs = {"model": model, "messages": QUESTION, "tools": TOOLS, "tool_choice": "required",
              "temperature": 0}
    whole_choice = client.chat.completions.create(**kwargs).choices[0]
    whole, whole_reason = whole_choice.message, whole_choice.finish_reason
    calls: list[dict] = []
    finish_reasons = []
    for chunk in client.chat.completions.create(stream=True, **kwargs):
        choice = chunk.choices[0]
        assert not choice.delta.content
        finish_reasons.append(choice.finish_reason)
        for entry in choice.delta.tool_calls or ():
            if entry.id is not None:  # a call's first delta: index, id, type, name
                assert entry.index == len(calls) and entry.type == "function"
                assert entry.id.startswith("call_") and entry.function.name
                calls.append({"name": entry.function.name, "arguments": ""})
            else:
                assert entry.function.name is None
            calls[entry.index]["arguments"] += entry.function.arguments or ""
    assert finish_reasons[-1] == whole_reason and set(finish_reasons[:-1]) == {None}
    assert whole_reason in ("tool_calls", "length")  # length: see test_forced_calls_...
    expected = [{"name": c.function.name, "arguments": c.function.arguments}
                for c in whole.tool_calls]
    assert calls == expected
    with client.chat.completions.stream(**kwargs) as stream:  # the SDK's own accumulation
        final = stream.get_final_completion().choices[0]
    assert final.finish_reason == whole_reason
    assert [{"name": c.function.name, "arguments": c.function.arguments}
            for c in final.message.tool_calls] == expected


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_auto_parses_a_call_the_model_writes(client, stream):
    """tool_choice auto: free generation, then parsing. A grammar (vLLM's structured_outputs)
    stands in for a model trained on tools, writing text and then a call."""
    call = '{"name": "add", "arguments": {"a": 2, "b": 3}}'
    written = f"Let me add.\n<tool_call>\n{call}\n</tool_call>"
    grammar = f"root ::= {json.dumps(written)}"
    kwargs = {"model": DEMO, "messages": QUESTION, "tools": TOOLS, "max_tokens": 100,
              "extra_body": {"structured_outputs": {"grammar": grammar}}}
    if not stream:
        choice = client.chat.completions.create(**kwargs).choices[0]
        assert choice.finish_reason == "tool_calls"
        assert choice.message.content == "Let me add."
        assert [(c.function.name, c.function.arguments) for c in choice.message.tool_calls] == [
            ("add", '{"a": 2, "b": 3}')]
        return
    content, arguments, reasons = "", "", []
    for chunk in client.chat.completions.create(stream=True, **kwargs):
        content += chunk.choices[0].delta.content or ""
        for entry in chunk.choices[0].delta.tool_calls or ():
            arguments += entry.function.arguments or ""
        reasons.append(chunk.choices[0].finish_reason)
    assert (content, arguments, reasons[-1]) == ("Let me add.", '{"a": 2, "b": 3}', "tool_calls")


def test_structural_tag_as_vllm_sends_it(client):
    """vLLM's `structured_outputs.structural_tag`, the mechanism behind forced calls, taken from
    a client as is: the answer is exactly the tagged segment, its content valid for the schema."""
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0,
                                                     "maximum": 9}}, "required": ["n"]}
    tag = {"type": "structural_tag", "format": {"type": "tag", "begin": "<n>", "end": "</n>",
                                                "content": {"type": "json_schema",
                                                            "json_schema": schema}}}
    text = client.chat.completions.create(
        model=RANDOM_HERMES, messages=QUESTION, max_tokens=40, temperature=0,
        extra_body={"structured_outputs": {"structural_tag": json.dumps(tag)}},
    ).choices[0].message.content
    assert text.startswith("<n>") and text.endswith("</n>")
    jsonschema.validate(json.loads(text[3:-4]), schema)
    # compact, as every JSON the engine writes (xgrammar's own tag content allows free spaces)
    assert re.fullmatch(r'<n>\{"n": [0-9]\}</n>', text), text


@pytest.mark.parametrize("model", MODELS)
def test_history_with_tool_results_round_trips(client, server, model):
    first = client.chat.completions.create(model=model, messages=QUESTION, tools=[ADD],
                                           tool_choice={"type": "function",
                                                        "function": {"name": "add"}},
                                           max_tokens=100, temperature=0)
    assistant = first.choices[0].message
    (name, arguments), = _assert_valid_calls(assistant, {"add"})
    history = [*QUESTION, assistant.model_dump(exclude_none=True),
               {"role": "tool", "tool_call_id": assistant.tool_calls[0].id,
                "content": str(arguments["a"] + arguments["b"])}]
    second = client.chat.completions.create(model=model, messages=history, tools=[ADD],
                                            max_tokens=10, temperature=0)
    # the call and its result are in the prompt: it grew by at least the call's text
    assert (second.usage.prompt_tokens
            >= first.usage.prompt_tokens + first.usage.completion_tokens)
    # the stored conversation keeps the call (as a Hermes block) and the result
    stored = httpx.get(f"{server}/v1/conversations/{second.model_extra['conversation_id']}",
                       timeout=30).json()["messages"]
    assert [m["role"] for m in stored] == ["user", "assistant", "tool", "assistant"]
    call = json.loads(stored[1]["content"].removeprefix("<tool_call>\n").removesuffix(
        "\n</tool_call>"))
    assert call == {"name": name, "arguments": arguments}
    assert stored[2]["content"] == history[2]["content"]
    none = client.chat.completions.create(model=model, messages=history, tools=[ADD],
                                          tool_choice="none", max_tokens=10, temperature=0)
    assert not none.choices[0].message.tool_calls
    without_tools = client.chat.completions.create(model=model, messages=history, max_tokens=10,
                                                   temperature=0)
    # "none" renders no tools: the same prompt as a request without them
    assert none.usage.prompt_tokens == without_tools.usage.prompt_tokens
    assert none.usage.prompt_tokens < second.usage.prompt_tokens


def test_chat_template_kwargs_reach_the_template(client):
    plain = client.chat.completions.create(model=RANDOM_HERMES, messages=QUESTION, max_tokens=1)
    hinted = client.chat.completions.create(model=RANDOM_HERMES, messages=QUESTION, max_tokens=1,
                                            extra_body={"chat_template_kwargs": {
                                                "hint": "Answer in one word."}})
    assert hinted.usage.prompt_tokens > plain.usage.prompt_tokens


class Distance(pydantic.BaseModel):
    value: int = pydantic.Field(ge=0, le=1000)
    unit: str = pydantic.Field(pattern="^(km|mi)$")


@pytest.mark.parametrize("model", [DEMO, RANDOM_HERMES])
def test_langchain_bind_tools_and_structured_output(server, model):
    langchain_openai = pytest.importorskip("langchain_openai")
    from langchain_core.tools import tool

    @tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    chat = langchain_openai.ChatOpenAI(model=model, base_url=f"{server}/v1", api_key="unused",
                                       temperature=0, max_tokens=120, max_retries=0)
    message = chat.bind_tools([add], tool_choice="add").invoke("What is 2 plus 3?")
    assert [call["name"] for call in message.tool_calls] == ["add"]
    assert set(message.tool_calls[0]["args"]) == {"a", "b"}
    assert all(isinstance(v, int) for v in message.tool_calls[0]["args"].values())
    assert message.tool_calls[0]["id"].startswith("call_")
    streamed = None
    for chunk in chat.bind_tools([add], tool_choice="any").stream("What is 2 plus 3?"):
        streamed = chunk if streamed is None else streamed + chunk
    assert streamed.tool_calls and streamed.tool_calls[0]["name"] == "add"
    for method in ("function_calling", "json_schema"):  # the latter: ChatOpenAI's default
        result = chat.with_structured_output(Distance, method=method).invoke("How far is it?")
        assert isinstance(result, Distance), method


@pytest.mark.parametrize(("extra", "param"), [
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"a": {"type": "foo"}}}}}]},
     "tools[0].function.parameters"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "array"}}}]}, "tools[0].function.parameters"),
    ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]},
     "tools[0].function.name"),
    ({"tools": [{"type": "retrieval"}]}, "tools[0].type"),
    ({"tools": [ADD, ADD]}, "tools"),
    ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}},
     "tool_choice"),
    ({"tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tools": TOOLS, "tool_choice": "required", "response_format": {"type": "json_object"}},
     "tool_choice"),
    ({"chat_template_kwargs": {"messages": []}}, "chat_template_kwargs"),
    ({"structured_outputs": {"structural_tag": "{not json"}}, "structured_outputs"),
    ({"structured_outputs": {"structural_tag": {"type": "structural_tag", "format": {
        "type": "tag", "begin": "<a>", "end": "</a>", "content": {"type": "nope"}}}}},
     "structured_outputs"),
    ({"messages": [*QUESTION, {"role": "assistant", "content": None,
                               "tool_calls": [{"id": "call_1", "type": "function",
                                               "function": {"arguments": "{}"}}]}]},
     "messages[1].tool_calls[0].function.name"),
])
def test_bad_tools_are_400_naming_the_field(client, extra, param):
    body = {"model": DEMO, "messages": QUESTION, "max_tokens": 5, **extra}
    with pytest.raises(openai.BadRequestError) as e:
        client.post("/chat/completions", body=body, cast_to=object)
    error = e.value.body
    assert error["param"] == param, error
    assert "pydantic" not in error["message"].lower()


def test_mistral_answers_keep_special_tokens():
    """Mistral's `[TOOL_CALLS]` is a special token in its tokenizers: with tools parsed on a
    Mistral template the answer is decoded with special tokens (else the marker would vanish
    before the parser sees it); other formats and tool_choice "none" keep the default."""
    from types import SimpleNamespace

    from app.api.tools import with_forced_calls
    from app.tool_calls import ToolPlan, parse_tool_request
    from shared import SamplingParams

    def params_for(template: str, choice) -> SamplingParams:
        plan = ToolPlan.for_tokenizer(SimpleNamespace(chat_template=template),
                                      parse_tool_request(TOOLS, choice))
        return with_forced_calls(SamplingParams(max_tokens=8), plan)

    assert params_for(MISTRAL_TEMPLATE, "auto").skip_special_tokens is False
    forced = params_for(MISTRAL_TEMPLATE, "required")
    assert forced.skip_special_tokens is False and forced.structured_outputs is not None
    assert params_for(MISTRAL_TEMPLATE, "none").skip_special_tokens is True
    assert params_for(HERMES_TEMPLATE, "auto").skip_special_tokens is True
    assert params_for(LLAMA3_TEMPLATE, "required").skip_special_tokens is True
