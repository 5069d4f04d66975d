"""Chat page in AppTest against the live API: streaming, persistence, regenerate, edit, feedback,
safe rendering of user text."""
from pathlib import Path

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from app.ui.client import ApiClient
from app.ui.safe_text import neutralize
from tests.app.ui.live_servers import free_port, live_api

MAIN = str(Path(__file__).resolve().parents[3] / "app" / "ui" / "main.py")


@pytest.fixture
def chat(api):
    """A signed-in session (annotator ann1) on the chat page, with a short, seeded answer length."""
    token = api.token_for("ann1")
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.session_state["api_url"] = api.url
    for key, value in {"token": token, "role": "annotator", "username": "ann1"}.items():
        at.session_state[key] = value
    at.run()
    at.sidebar.number_input[0].set_value(24)  # max tokens: keeps tests fast
    return at, ApiClient(api.url, token=token)


def _stored(client: ApiClient, at: AppTest) -> list[dict]:
    return client.conversation(at.session_state["conversation_id"])["messages"]


def _production_version(api) -> str:
    """The version the public name answers with now (other tests on this session's server may have
    promoted a registry version, which the server hot-swaps to)."""
    models = httpx.get(f"{api.url}/v1/models", headers={"Authorization": f"Bearer {api.admin_key}"})
    public = models.json()["data"][0]
    assert public["id"] == api.model
    return public["version"]


def _send(at: AppTest, text: str) -> AppTest:
    return at.chat_input[0].set_value(text).run()


def test_models_come_from_the_api_and_answers_stream_and_persist(api, chat):
    at, client = chat
    picker = at.sidebar.selectbox[0]  # the public name, then loaded versions: name · version · status
    assert picker.value == api.model
    assert picker.options[0] == f"{api.model} · {_production_version(api)} · production"
    assert f"{_production_version(api)} · production" in picker.options
    _send(at, "Once upon a time")
    assert not at.exception and not at.error
    messages = _stored(client, at)
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[1]["content"] and messages[1]["model_version"] == _production_version(api)
    bubbles = at.chat_message
    assert [b.name for b in bubbles] == ["user", "assistant"]  # after the rerun: drawn from the API
    conversation_id = at.session_state["conversation_id"]
    assert conversation_id in [c["id"] for c in client.conversations()]
    # a fresh session resumes the conversation from the sidebar list
    fresh = AppTest.from_file(MAIN, default_timeout=60)
    for key in ("api_url", "token", "role", "username"):
        fresh.session_state[key] = at.session_state[key]
    fresh.run()
    assert not fresh.chat_message
    fresh.button(key=f"conv_{conversation_id}").click().run()
    assert [b.name for b in fresh.chat_message] == ["user", "assistant"]
    assert fresh.chat_message[0].markdown[0].value == "Once upon a time"


def test_multi_turn_regenerate_and_branch_switching(chat):
    at, client = chat
    _send(at, "Lily had a dog")
    _send(at, "The dog ran")
    messages = _stored(client, at)
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[2]["parent_id"] == messages[1]["id"]
    last = messages[3]["id"]
    at.button(key=f"regen_{last}").click().run()
    messages = _stored(client, at)
    siblings = [m for m in messages if m["role"] == "assistant" and m["parent_id"] == messages[2]["id"]]
    assert len(siblings) == 2 and last in [m["id"] for m in siblings]  # the old answer is kept
    assert any("version 2 of 2" in c.value for c in at.caption)
    new = next(m for m in siblings if m["id"] != last)
    at.button(key=f"prev_{new['id']}").click().run()
    assert any("version 1 of 2" in c.value for c in at.caption)
    assert at.button(key=f"regen_{last}")  # the old answer is on screen again


def test_edit_and_resend_makes_a_branch(chat):
    at, client = chat
    _send(at, "Tom saw a cat")
    _send(at, "The cat was red")
    second_user = _stored(client, at)[2]
    at.text_area(key=f"edit_{second_user['id']}").set_value("The cat was blue")
    at.button(key=f"resend_{second_user['id']}").click().run()
    messages = _stored(client, at)
    users = [m for m in messages if m["role"] == "user" and m["parent_id"] == second_user["parent_id"]]
    assert sorted(m["content"] for m in users) == ["The cat was blue", "The cat was red"]
    assert any("version 2 of 2" in c.value for c in at.caption)


def test_feedback_thumbs_stars_tags_comment_and_correction_are_one_record(api, chat):
    at, client = chat
    _send(at, "A big tree")
    answer = _stored(client, at)[1]
    at.feedback(key=f"thumbs_{answer['id']}").set_value(0).run()
    at.feedback(key=f"stars_{answer['id']}").set_value(1).run()
    at.multiselect(key=f"tags_{answer['id']}").set_value(["incorrect", "too long"])
    at.text_input(key=f"comment_{answer['id']}").set_value("not a story")
    at.text_area(key=f"correction_{answer['id']}").set_value("A big tree grew in the park.")
    at.button(key=f"send_{answer['id']}").click().run()
    assert not at.error, [e.value for e in at.error]
    feedback = client.conversation(at.session_state["conversation_id"])["messages"][1]["feedback"]
    assert [(f["thumbs"], f["rating"], f["tags"], f["comment"], f["correction"]) for f in feedback] == [
        ("down", 2, ["incorrect", "too long"], "not a story", "A big tree grew in the park.")]
    # sent: the boxes are empty and the chat says so once (the panel closing: test_browser.py)
    assert at.text_area(key=f"correction_{answer['id']}").value == ""
    assert at.text_input(key=f"comment_{answer['id']}").value == ""
    assert [c.value for c in at.caption if "saved" in c.value] == ["feedback saved"]
    assert not [s.value for s in at.success]


def test_user_html_and_markdown_are_shown_as_text(chat):
    at, _ = chat
    _send(at, "<img src=x onerror=alert(1)> **hi**")
    user_markdown = at.chat_message[0].markdown[0].value
    assert user_markdown.startswith("\\<img src\\=x onerror\\=alert\\(1\\)\\> \\*\\*hi\\*\\*")


def test_signed_out_visitors_see_only_the_sign_in_page_when_the_server_wants_one(api):
    at = AppTest.from_file(MAIN, default_timeout=30)
    at.session_state["api_url"] = api.url
    at.run()
    assert not at.exception and not at.error and not at.chat_input
    assert at.title[0].value == "Account" and [b.label for b in at.button] == ["Sign in", "Use key"]
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("pages/chat.py")


def test_api_down_is_a_readable_error():
    port = free_port()  # nobody listens there once the probe socket is closed
    at = AppTest.from_file(MAIN, default_timeout=30)
    at.session_state["api_url"] = f"http://127.0.0.1:{port}"
    at.run()
    assert not at.exception
    assert any("not reachable" in e.value for e in at.error)


def test_editing_the_opening_message_starts_a_new_conversation(chat):
    at, client = chat
    _send(at, "Sam found a ball")
    first = at.session_state["conversation_id"]
    opening = _stored(client, at)[0]
    at.text_area(key=f"edit_{opening['id']}").set_value("Sam found a hat")
    at.button(key=f"resend_{opening['id']}").click().run()
    assert at.session_state["conversation_id"] != first
    assert [m["content"] for m in _stored(client, at) if m["role"] == "user"] == ["Sam found a hat"]
    assert [m["content"] for m in client.conversation(first)["messages"] if m["role"] == "user"] == [
        "Sam found a ball"]


def test_open_server_chats_without_signing_in_and_stores_sampling(tmp_path, monkeypatch):
    with live_api(tmp_path, require_key=False) as open_api:
        monkeypatch.setenv("FLYWHEEL_UI_REQUIRE_LOGIN", "1")  # `flywheel ui --require-login`
        gated = AppTest.from_file(MAIN, default_timeout=60)
        gated.session_state["api_url"] = open_api.url
        gated.run()
        assert gated.title[0].value == "Account" and not gated.chat_input  # only the sign-in page
        monkeypatch.setenv("FLYWHEEL_UI_REQUIRE_LOGIN", "0")
        at = AppTest.from_file(MAIN, default_timeout=60)
        at.session_state["api_url"] = open_api.url
        at.run()
        assert not at.error
        at.sidebar.number_input[0].set_value(8)  # max tokens
        at.sidebar.slider[0].set_value(0.0)  # temperature
        at.sidebar.number_input[1].set_value(7)  # seed
        _send(at, "Hello")
        assert not at.error, [e.value for e in at.error]
        answer = ApiClient(open_api.url).conversation(at.session_state["conversation_id"])["messages"][1]
        assert answer["completion_tokens"] <= 8
        assert answer["sampling_params"]["temperature"] == 0.0 and answer["sampling_params"]["seed"] == 7


def test_a_deleted_conversation_is_reported_and_the_next_message_starts_a_new_one(api, chat):
    at, client = chat
    _send(at, "A red ball")
    gone = at.session_state["conversation_id"]
    other = AppTest.from_file(MAIN, default_timeout=60)  # the same user, in a second browser tab
    for key in ("api_url", "token", "role", "username", "conversation_id"):
        other.session_state[key] = at.session_state[key]
    other.run()
    next(b for b in other.sidebar.button if b.label == "Delete this conversation").click().run()
    assert other.session_state["conversation_id"] is None and not other.error
    assert gone not in [c["id"] for c in client.conversations()]
    at.run()
    assert any("HTTP 404" in e.value for e in at.error) and not at.chat_message
    _send(at, "A blue ball")
    assert at.session_state["conversation_id"] not in (None, gone)
    assert [m["content"] for m in _stored(client, at) if m["role"] == "user"] == ["A blue ball"]


def test_each_answer_shows_its_model_tokens_and_timings(api, chat):
    at, client = chat
    _send(at, "The cat sat")
    answer = _stored(client, at)[1]
    facts = [c.value for c in at.chat_message[1].caption]
    assert answer["model_version"] == _production_version(api)
    expected = neutralize(f"{answer['model_version']} · {answer['completion_tokens']} tokens · first token")
    assert any(f.startswith(expected) for f in facts), facts
