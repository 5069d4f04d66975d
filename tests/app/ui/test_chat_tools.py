"""The chat page's demo tools in AppTest against a live server on the bundled demo model: with the
switch on, the answer's calls are run by the UI, their results drawn and sent back, and a final
answer follows; the conversation the server stores holds the calls, the results and the answer.
The pieces underneath are checked on their own: the request fields of each round, the
narrowing that fits a follow-up in a small context, the server's context error read back, and
the store keeping every result of a several-call answer."""
from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from app.demo.tools import DEMO_TOOLS, run_tool
from app.ui.chat_tools import (MAX_TOOL_ROUNDS, ToolSettings, narrower_fields, request_fields,
                              run_calls)
from app.ui.client import ApiClient, ApiError, completion_room
from tests.app.api.conftest import demo_model_server

MAIN = str(Path(__file__).resolve().parents[3] / "app" / "ui" / "main.py")
DEMO = "demo"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with demo_model_server(tmp_path_factory.mktemp("data"), DEMO, num_kv_blocks=256,
                           max_num_seqs=8) as url:
        yield url


def _expected_result(content: str) -> str:
    """What the tool answers to the call a stored assistant turn holds (the server stores the
    model's text: a Hermes block). A call cut off by the context (the untrained demo model
    under "required" may write an argument string until max_tokens) gets an error result."""
    assert content.startswith('<tool_call>\n{"name": "'), content
    body = content.removeprefix("<tool_call>").removesuffix("</tool_call>")
    try:
        call = json.loads(body)
    except ValueError:
        return "error: the arguments are not a JSON object"
    assert call["name"] in {"calculator", "convert_units"}
    return run_tool(call["name"], call["arguments"])


def test_tools_switch_runs_calls_and_stores_the_exchange(server):
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.session_state["api_url"] = server
    at.run()
    at.sidebar.toggle(key="tools_on").set_value(True).run()
    # the demo model does not call on its own yet: "Call a tool first" is tool_choice "required"
    at.sidebar.checkbox(key="tools_required").set_value(True)
    at.sidebar.slider[0].set_value(0.0)  # temperature
    at.chat_input[0].set_value("What is 17 times 23?").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    conversation_id = at.session_state["conversation_id"]
    stored = ApiClient(server).conversation(conversation_id)["messages"]
    roles = [m["role"] for m in stored]
    assert roles[:3] == ["user", "assistant", "tool"] and roles[-1] == "assistant", roles
    assert roles.count("tool") <= MAX_TOOL_ROUNDS
    # the result stored is the executor's answer to exactly the call the model made
    assert stored[2]["content"].startswith(_expected_result(stored[1]["content"]))
    assert stored[2]["parent_id"] == stored[1]["id"] and stored[3]["parent_id"] == stored[2]["id"]
    assert stored[-1]["content"].strip() and "<tool_call>" not in stored[-1]["content"]
    # after the rerun the page draws the stored exchange: the call, its result, the answer
    bubbles = [b.name for b in at.chat_message]
    assert bubbles == roles, bubbles
    tool_bubble = at.chat_message[2]
    assert tool_bubble.caption[0].value == "tool result"
    assert stored[2]["content"][:40] in tool_bubble.code[0].value
    if "</tool_call>" in stored[1]["content"]:  # a cut-off call is drawn as the text it is
        assert at.chat_message[1].caption[0].value == "tool call"


def test_a_valid_call_is_answered_and_the_follow_up_fits_the_context(server, monkeypatch):
    """The question's request carries a grammar that writes a valid calculator call (it stands in
    for a model trained on the tools, as in tests/app/api/test_tool_calling_api.py); the rest is
    the page as it is: the call parsed by the server, run here, its result sent back and the
    follow-up narrowed to the called tool so it fits the demo model's 512 tokens."""
    call = '{"name": "calculator", "arguments": {"expression": "17 * 23"}}'
    grammar = f"root ::= {json.dumps(f'<tool_call>{chr(10)}{call}{chr(10)}</tool_call>')}"
    sent: list[dict] = []
    real_stream = ApiClient.stream_chat

    def stream_chat(self, messages, ids, *, model, sampling, extra):
        sent.append(extra)
        if "parent_message_id" not in extra:  # the question (sent again if max_tokens is cut)
            extra = extra | {"tool_choice": "auto", "structured_outputs": {"grammar": grammar}}
        return real_stream(self, messages, ids, model=model, sampling=sampling, extra=extra)

    monkeypatch.setattr(ApiClient, "stream_chat", stream_chat)
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.session_state["api_url"] = server
    at.run()
    at.sidebar.toggle(key="tools_on").set_value(True)
    at.sidebar.slider[0].set_value(0.0)
    at.chat_input[0].set_value("What is 17 times 23?").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    stored = ApiClient(server).conversation(at.session_state["conversation_id"])["messages"]
    assert [m["role"] for m in stored] == ["user", "assistant", "tool", "assistant"]
    assert stored[2]["content"] == str(17 * 23)
    assert at.chat_message[1].caption[0].value == "tool call"  # (then the answer's stats)
    assert at.chat_message[1].code[0].value == 'calculator({"expression": "17 * 23"})'
    # the follow-up first asked with both tools, was refused (too long), then with the one called
    follow_ups = [e for e in sent if "parent_message_id" in e]
    tools_shown = [[t["function"]["name"] for t in e["tools"]] for e in follow_ups]
    assert tools_shown[0] == ["calculator", "convert_units"] and tools_shown[-1] == ["calculator"]
    assert all(e["parent_message_id"] == stored[1]["id"] for e in follow_ups)


def test_several_results_of_one_answer_are_all_stored(server):
    """A continuation whose history ends in two tool results stores both, chained, before the
    answer (the chat sends one result per call)."""
    first = httpx.post(f"{server}/v1/chat/completions", timeout=60, json={
        "model": DEMO, "max_tokens": 4,
        "messages": [{"role": "user", "content": "Convert 2 km and add 3 and 4"}]}).json()
    conversation_id, assistant_id = first["conversation_id"], first["message_ids"][0]
    calls = [{"id": "call_a", "type": "function", "function": {
                 "name": "convert_units",
                 "arguments": '{"value": 2, "from_unit": "km", "to_unit": "m"}'}},
             {"id": "call_b", "type": "function", "function": {
                 "name": "calculator", "arguments": '{"expression": "3 + 4"}'}}]
    history = [{"role": "user", "content": "Convert 2 km and add 3 and 4"},
               {"role": "assistant", "content": None, "tool_calls": calls}, *run_calls(calls)]
    assert [m["content"] for m in history[2:]] == ["2000", "7"]
    response = httpx.post(f"{server}/v1/chat/completions", timeout=60, json={
        "model": DEMO, "max_tokens": 4, "messages": history, "conversation_id": conversation_id,
        "parent_message_id": assistant_id})
    assert response.status_code == 200, response.text
    stored = ApiClient(server).conversation(conversation_id)["messages"]
    assert [m["role"] for m in stored] == ["user", "assistant", "tool", "tool", "assistant"]
    assert [m["content"] for m in stored[2:4]] == ["2000", "7"]
    assert [m["parent_id"] for m in stored[2:]] == [m["id"] for m in stored[1:4]]


def test_request_fields_per_round():
    on = ToolSettings(enabled=True, first_choice="required")
    assert request_fields(ToolSettings(), 0) == {}
    first = request_fields(on, 0)
    assert first["tool_choice"] == "required" and first["tools"] == list(DEMO_TOOLS)
    assert request_fields(on, 1)["tool_choice"] == "auto"
    assert request_fields(on, MAX_TOOL_ROUNDS)["tool_choice"] == "none"  # the exchange ends


def test_narrower_fields_keep_the_called_tools_then_none():
    fields = request_fields(ToolSettings(enabled=True), 1)
    narrower = narrower_fields(fields, {"calculator"})
    assert [t["function"]["name"] for t in narrower["tools"]] == ["calculator"]
    assert narrower["tool_choice"] == "auto"
    assert narrower_fields(narrower, {"calculator"})["tool_choice"] == "none"
    assert narrower_fields(narrower_fields(narrower, {"calculator"}), {"calculator"}) is None
    assert narrower_fields({}, set()) is None


def test_completion_room_reads_the_servers_context_error(server):
    """The room left is read from the server's own refusal (the demo model: 512 tokens)."""
    body = {"model": DEMO, "max_tokens": 500, "tools": list(DEMO_TOOLS),
            "messages": [{"role": "user", "content": "What is 17 times 23?"}]}
    response = httpx.post(f"{server}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 400
    error = ApiError(response.json()["error"]["message"], 400, response.json()["error"]["param"])
    room = completion_room(error)
    assert room is not None and 0 < room < 500
    fitted = httpx.post(f"{server}/v1/chat/completions", json=body | {"max_tokens": room},
                        timeout=60)
    assert fitted.status_code == 200, fitted.text
    assert fitted.json()["usage"]["prompt_tokens"] + room == 512
    assert completion_room(ApiError("other", 400, "messages")) is None
