"""Chat page in AppTest against the live API: stored answers drawn as safe markdown with code
blocks, tool calls and results; conversation search, rename and export
from the sidebar. Conversations with chosen answers are written the way API clients write
them: an assistant turn sent in the history is stored as given."""
from pathlib import Path

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from app.store.base import new_id
from app.ui.client import ApiClient
from app.ui.conversation_client import export_conversation

MAIN = str(Path(__file__).resolve().parents[3] / "app" / "ui" / "main.py")
CODE_ANSWER = "Here is code:\n```python\nprint('<b>hi</b>')\n```\nSee [docs](http://evil.example)."
CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


@pytest.fixture(scope="module")
def alice(api):
    token = api.token_for("alice")
    return token, ApiClient(api.url, token=token)


def _session(api, token: str) -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.session_state["api_url"] = api.url
    for key, value in {"token": token, "role": "user", "username": "alice"}.items():
        at.session_state[key] = value
    at.run()
    return at


def _chat_with_history(api, token: str, history: list[dict]) -> str:
    """One exchange whose history holds the given turns (stored as sent); the conversation id."""
    response = httpx.post(f"{api.url}/v1/chat/completions", timeout=60,
                          headers={"Authorization": f"Bearer {token}"},
                          json={"model": api.model, "messages": history, "max_tokens": 4})
    assert response.status_code == 200, response.text
    return response.json()["conversation_id"]


def _open(at: AppTest, conversation_id: str) -> AppTest:
    return at.button(key=f"conv_{conversation_id}").click().run()


def test_code_blocks_tool_calls_and_results_are_drawn_safely(api, alice):
    token, _ = alice
    conversation_id = _chat_with_history(api, token, [
        {"role": "user", "content": "Show code and the weather"},
        {"role": "assistant", "content": CODE_ANSWER},
        {"role": "user", "content": "And the weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 21, "sky": "clear"}'},
    ])
    at = _open(_session(api, token), conversation_id)
    assert not at.exception and not at.error, [e.value for e in at.error]
    bubbles = at.chat_message
    assert [b.name for b in bubbles][:5] == ["user", "assistant", "user", "assistant", "tool"]
    code = bubbles[1].code[0]
    assert code.value == "print('<b>hi</b>')" and code.language == "python"
    prose = " ".join(m.value for m in bubbles[1].markdown)
    assert "\\[docs\\]\\(http\\:\u2060\\/\\/evil" in prose  # the link is text
    assert bubbles[3].code[0].value == 'get_weather({"city": "Paris"})'
    assert [c.value for c in bubbles[3].caption][:1] == ["tool call"]
    assert bubbles[4].code[0].value == '{\n  "temp_c": 21,\n  "sky": "clear"\n}'
    assert bubbles[4].code[0].language == "json"


def test_search_rename_and_export_from_the_sidebar(api, alice):
    token, client = alice
    marker = new_id("zebra")  # unique text only this conversation holds
    conversation_id = _chat_with_history(api, token, [{"role": "user", "content": f"Tell me about {marker}"}])
    at = _session(api, token)
    at.sidebar.text_input(key="conversation_search").set_value(marker.upper()).run()
    shown = [b.key for b in at.sidebar.button if (b.key or "").startswith("conv_")]
    assert shown == [f"conv_{conversation_id}"]
    at.sidebar.text_input(key="conversation_search").set_value("no such words anywhere 42").run()
    assert not [b for b in at.sidebar.button if (b.key or "").startswith("conv_")]
    assert any("No conversation matches" in c.value for c in at.sidebar.caption)
    at.sidebar.text_input(key="conversation_search").set_value("").run()
    _open(at, conversation_id)
    at.sidebar.text_input(key=f"title_{conversation_id}").set_value("Zebra facts")
    at.sidebar.button(key=f"rename_{conversation_id}").click().run()
    assert not at.error and client.conversation(conversation_id)["title"] == "Zebra facts"
    assert at.sidebar.button(key=f"conv_{conversation_id}").label == "Zebra facts"
    at.sidebar.text_input(key=f"title_{conversation_id}").set_value("   ")
    at.sidebar.button(key=f"rename_{conversation_id}").click().run()
    assert any("title must not be empty" in e.value for e in at.error)
    assert client.conversation(conversation_id)["title"] == "Zebra facts"
    exported = export_conversation(client, conversation_id, "md")
    assert exported.startswith("# Zebra facts") and f"Tell me about {marker}" in exported

