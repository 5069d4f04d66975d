"""Conversation search (`?q=`), rename (PATCH) and export (md / json), on an app with keys
enabled and no model: conversations are written as the chat route writes them, through the
durable outbox. Only the owner finds, renames or exports a conversation."""
from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.core.config import Settings
from app.store.base import new_id
from app.store.crud_chat import ExchangeRecord, MessageRecord

ADMIN_KEY = "fw-test-admin-key-conv"
PASSWORD = "long enough pw"


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("conv-tools"), api_keys=[ADMIN_KEY]))
    with TestClient(app) as client:
        client.app_state = app.state.flywheel
        yield client


@pytest.fixture(scope="module")
def users(api) -> dict[str, tuple[str, dict]]:
    """username -> (user id, auth headers)."""
    found = {}
    for name in ("carol", "dave"):
        created = api.post("/v1/users", headers=_auth(ADMIN_KEY),
                           json={"username": name, "password": PASSWORD}).json()
        token = api.post("/v1/auth/login", json={"username": name, "password": PASSWORD}).json()["token"]
        found[name] = (created["id"], _auth(token))
    return found


def _auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _write(api, user_id: str, title: str, turns: list[tuple[str, str]], finish: str = "stop") -> str:
    """A conversation as the chat route stores it (user turn, answer, ...); returns its id."""
    conversation_id, parent, records = new_id("conv"), None, []
    for role, content in turns:
        record = MessageRecord(id=new_id("msg"), role=role, content=content, parent_id=parent,
                               finish_reason=finish if role == "assistant" else None,
                               model_version="mv-test" if role == "assistant" else None)
        records.append(record)
        parent = record.id
    outbox = api.app_state.outbox
    outbox.append(ExchangeRecord(conversation_id=conversation_id, user_id=user_id,
                                 create_conversation=True, title=title, model="demo",
                                 messages=records))
    assert outbox.wait_drained(outbox.last_seq, 10)
    return conversation_id


def _titles(api, headers, q: str) -> list[str]:
    response = api.get("/v1/conversations", headers=headers, params={"q": q})
    assert response.status_code == 200, response.text
    return sorted(c["title"] for c in response.json()["data"])


def test_search_matches_titles_and_messages_ignoring_case_and_literally(api, users):
    carol, carol_auth = users["carol"]
    dave, dave_auth = users["dave"]
    _write(api, carol, "Cooking pasta", [("user", "How long to boil?"), ("assistant", "About 10 min.")])
    _write(api, carol, "Weekend plans", [("user", "Ideas for a HIKE?"), ("assistant", "Try the 100% ridge_trail.")])
    _write(api, dave, "Dave's pasta", [("user", "pasta please"), ("assistant", "Here.")])
    assert _titles(api, carol_auth, "PASTA") == ["Cooking pasta"]  # title; Dave's stays his
    assert _titles(api, carol_auth, "hike") == ["Weekend plans"]  # a message's text
    assert _titles(api, carol_auth, "100%") == ["Weekend plans"]
    assert _titles(api, carol_auth, "0%") == ["Weekend plans"]
    assert _titles(api, carol_auth, "e_t") == ["Weekend plans"]  # "_" is a character, not a wildcard
    assert _titles(api, carol_auth, "e%t") == [] and _titles(api, carol_auth, "b_il") == []
    assert _titles(api, carol_auth, "nothing like this") == []
    assert len(api.get("/v1/conversations", headers=carol_auth, params={"q": " "}).json()["data"]) >= 2
    too_long = api.get("/v1/conversations", headers=carol_auth, params={"q": "x" * 257})
    assert too_long.status_code == 400 and too_long.json()["error"]["param"] == "q"


def test_rename_by_the_owner_only_with_a_readable_title(api, users):
    carol, carol_auth = users["carol"]
    _, dave_auth = users["dave"]
    conversation_id = _write(api, carol, "old title", [("user", "hi"), ("assistant", "hello")])
    renamed = api.patch(f"/v1/conversations/{conversation_id}", headers=carol_auth,
                        json={"title": "  Greetings  "})
    assert renamed.status_code == 200 and renamed.json()["title"] == "Greetings"
    assert api.get(f"/v1/conversations/{conversation_id}", headers=carol_auth).json()["title"] == "Greetings"
    assert _titles(api, carol_auth, "greet") == ["Greetings"]
    for headers in (dave_auth, _auth(ADMIN_KEY)):  # not the owner: as if it did not exist
        other = api.patch(f"/v1/conversations/{conversation_id}", headers=headers, json={"title": "mine"})
        assert other.status_code == 404 and other.json()["error"]["param"] == "conversation_id"
    missing = api.patch("/v1/conversations/conv-nope", headers=carol_auth, json={"title": "x"})
    assert missing.status_code == 404
    for title in ("", "   ", "x" * 257, "two\nlines", "tab\there", "evil\u202eelif", None, 5):
        bad = api.patch(f"/v1/conversations/{conversation_id}", headers=carol_auth, json={"title": title})
        assert bad.status_code == 400, (title, bad.text)
        assert bad.json()["error"]["param"] == "title", bad.json()
    extra = api.patch(f"/v1/conversations/{conversation_id}", headers=carol_auth,
                      json={"title": "ok", "color": "red"})
    assert extra.status_code == 400 and extra.json()["error"]["param"] == "color"
    assert api.get(f"/v1/conversations/{conversation_id}", headers=carol_auth).json()["title"] == "Greetings"


def test_export_markdown_and_json_by_the_owner_only(api, users):
    carol, carol_auth = users["carol"]
    _, dave_auth = users["dave"]
    answer = "Use a loop:\n```python\nfor i in range(3):\n    print(i)\n```"
    conversation_id = _write(api, carol, "Loops", [("user", "How do I loop?"), ("assistant", answer)],
                             finish="abort")
    md = api.get(f"/v1/conversations/{conversation_id}/export", headers=carol_auth, params={"format": "md"})
    assert md.status_code == 200 and md.headers["content-type"].startswith("text/markdown")
    assert f'filename="{conversation_id}.md"' in md.headers["content-disposition"]
    text = md.text
    assert text.startswith("# Loops\n")
    assert text.index("## User\n\nHow do I loop?") < text.index("## Assistant\n\n" + answer)
    assert "stopped before the end" in text and "model version mv-test" in text
    as_json = api.get(f"/v1/conversations/{conversation_id}/export", headers=carol_auth,
                      params={"format": "json"})
    assert as_json.status_code == 200 and as_json.headers["content-type"] == "application/json"
    exported = json.loads(as_json.text)
    assert exported == api.get(f"/v1/conversations/{conversation_id}", headers=carol_auth).json()
    assert [(m["role"], m["content"], m["finish_reason"]) for m in exported["messages"]] == [
        ("user", "How do I loop?", None), ("assistant", answer, "abort")]
    default = api.get(f"/v1/conversations/{conversation_id}/export", headers=carol_auth)
    assert default.text == text  # Markdown unless asked otherwise
    for headers in (dave_auth, _auth(ADMIN_KEY)):
        other = api.get(f"/v1/conversations/{conversation_id}/export", headers=headers)
        assert other.status_code == 404 and other.json()["error"]["param"] == "conversation_id"
    bad = api.get(f"/v1/conversations/{conversation_id}/export", headers=carol_auth,
                  params={"format": "pdf"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "format"


def test_markdown_export_follows_the_newest_branch(api, users):
    carol, carol_auth = users["carol"]
    conversation_id = _write(api, carol, "Branches", [("user", "Q"), ("assistant", "first answer")])
    stored = api.get(f"/v1/conversations/{conversation_id}", headers=carol_auth).json()["messages"]
    regenerated = MessageRecord(id=new_id("msg"), role="assistant", content="second answer",
                                parent_id=stored[0]["id"], finish_reason="stop")
    outbox = api.app_state.outbox
    outbox.append(ExchangeRecord(conversation_id=conversation_id, user_id=carol,
                                 create_conversation=False, title=None, model="demo",
                                 messages=[regenerated]))
    md = api.get(f"/v1/conversations/{conversation_id}/export", headers=carol_auth).text
    assert "second answer" in md and "first answer" not in md  # read-your-writes: from the outbox
    exported = api.get(f"/v1/conversations/{conversation_id}/export", headers=carol_auth,
                       params={"format": "json"}).json()
    assert sorted(m["content"] for m in exported["messages"]) == ["Q", "first answer", "second answer"]
