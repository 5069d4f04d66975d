"""`/v1/eval-sets` over HTTP on a real server with API keys required: who may read and change sets,
OpenAI-style errors (checked through the official `openai` client's error classes), nothing stored
on bad input, and the gate's view of what the API registered."""
from __future__ import annotations

import json

import httpx
import openai
import pytest

from app.api.main import create_app
from app.core.config import Settings
from app.flywheel.eval_set_items import content_sha256, parse_jsonl
from app.flywheel.eval_sets import registered_eval_cases
from app.serving.model_host import ModelHost
from app.store.session import open_store
from model.evaluation import EvalCase
from tests.app.api.conftest import ServerThread

ADMIN_KEY = "sk-eval-sets-admin-0123456789"
PASSWORD = "correct horse battery"
ITEMS = [{"messages": [{"role": "system", "content": "One word."},
                       {"role": "user", "content": "Capital of Zarnovia?"}], "expected": "Velmora"},
         {"prompt": "Once upon a", "expected": "time"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """No model is needed for these routes: the server runs without one."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("eval-sets"), api_keys=[ADMIN_KEY])
    with ServerThread(create_app(settings, host=ModelHost())) as url:
        for username, role in {"alice": "user", "ann": "annotator", "boss": "admin"}.items():
            httpx.post(f"{url}/v1/users", headers=_auth(ADMIN_KEY),
                       json={"username": username, "password": PASSWORD, "role": role}).raise_for_status()
        tokens = {name: httpx.post(f"{url}/v1/auth/login", json={"username": name, "password": PASSWORD})
                  .json()["token"] for name in ("alice", "ann", "boss")}
        yield url, tokens, settings


def _auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def boss(server):
    url, tokens, _ = server
    with httpx.Client(base_url=url, headers=_auth(tokens["boss"]), timeout=30) as client:
        yield client
        for s in client.get("/v1/eval-sets").json()["data"]:
            client.delete(f"/v1/eval-sets/{s['name']}").raise_for_status()


def _openai(server, who: str) -> openai.OpenAI:
    url, tokens, _ = server
    return openai.OpenAI(base_url=f"{url}/v1", api_key=tokens[who], max_retries=0)


def test_create_read_list_delete(server, boss):
    created = boss.post("/v1/eval-sets", json={"name": "facts", "description": "Zarnovia", "items": ITEMS})
    assert created.status_code == 200, created.text
    body = created.json()
    assert (body["object"], body["name"], body["item_count"], body["created_by"], body["replaced"]) == (
        "eval_set", "facts", 2, "boss", False)
    jsonl = "".join(json.dumps(i) + "\n" for i in ITEMS)  # the same items as a CLI file
    assert body["content_sha256"] == content_sha256(parse_jsonl(jsonl))
    detail = boss.get("/v1/eval-sets/facts").json()
    assert detail["items"] == [{"messages": ITEMS[0]["messages"], "expected": "Velmora"},
                               {"messages": [{"role": "user", "content": "Once upon a"}], "expected": "time"}]
    listed = boss.get("/v1/eval-sets").json()
    assert listed["object"] == "list" and [s["name"] for s in listed["data"]] == ["facts"]
    assert "items" not in listed["data"][0]
    deleted = boss.delete("/v1/eval-sets/facts")
    assert deleted.json() == {"object": "eval_set.deleted", "name": "facts", "deleted": True}
    assert boss.get("/v1/eval-sets").json()["data"] == []


def test_roles(server, boss):
    url, tokens, _ = server
    assert boss.post("/v1/eval-sets", json={"name": "facts", "items": ITEMS}).status_code == 200
    ann = _openai(server, "ann")
    assert [s["name"] for s in ann.get("/eval-sets", cast_to=object)["data"]] == ["facts"]
    assert ann.get("/eval-sets/facts", cast_to=object)["item_count"] == 2
    with pytest.raises(openai.PermissionDeniedError):
        ann.post("/eval-sets", body={"name": "mine", "items": ITEMS}, cast_to=object)
    with pytest.raises(openai.PermissionDeniedError):
        ann.delete("/eval-sets/facts", cast_to=object)
    with pytest.raises(openai.PermissionDeniedError):
        _openai(server, "alice").get("/eval-sets", cast_to=object)
    assert httpx.get(f"{url}/v1/eval-sets").status_code == 401
    assert httpx.post(f"{url}/v1/eval-sets", json={"name": "x", "items": ITEMS}).status_code == 401
    assert [s["name"] for s in boss.get("/v1/eval-sets").json()["data"]] == ["facts"]


@pytest.mark.parametrize("body, param, message", [
    ({"name": "facts", "items": [ITEMS[0], {"prompt": "hi", "expected": ""}]}, "items.1",
     "items[1]: 'expected' is blank"),
    ({"name": "facts", "items": [{"messages": [{"role": "assistant", "content": "hi"}], "expected": "x"}]},
     "items.0", "the last message must be from the user"),
    ({"name": "facts", "items": [{"prompt": "nul \u0000", "expected": "x"}]}, "items.0", "NUL"),
    ({"name": "facts", "items": []}, "items", "'items' is empty"),
    ({"name": "a/b", "items": ITEMS}, "name", "an eval set name is"),
    ({"name": "facts", "description": "d" * 1001, "items": ITEMS}, "description", "at most 1000"),
    ({"name": "facts"}, "items", None),
    ({"name": "facts", "items": ITEMS, "colour": "red"}, "colour", "Unrecognized request argument"),
])
def test_bad_input_is_400_with_param_and_stores_nothing(server, boss, body, param, message):
    with pytest.raises(openai.BadRequestError) as caught:
        _openai(server, "boss").post("/eval-sets", body=body, cast_to=object)
    error = caught.value.body
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert message is None or message in error["message"]
    assert boss.get("/v1/eval-sets").json()["data"] == []


def test_lone_surrogate_in_raw_json_is_400(boss):
    raw = '{"name": "facts", "items": [{"prompt": "\\ud800", "expected": "x"}]}'
    response = boss.post("/v1/eval-sets", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert boss.get("/v1/eval-sets").json()["data"] == []


def test_taken_name_is_409_until_replace(server, boss):
    assert boss.post("/v1/eval-sets", json={"name": "facts", "items": ITEMS}).status_code == 200
    with pytest.raises(openai.ConflictError) as caught:
        _openai(server, "boss").post("/eval-sets", body={"name": "facts", "items": ITEMS[1:]}, cast_to=object)
    assert caught.value.body["param"] == "name" and '"replace": true' in caught.value.body["message"]
    assert boss.get("/v1/eval-sets/facts").json()["item_count"] == 2
    replaced = boss.post("/v1/eval-sets", json={"name": "facts", "items": ITEMS[1:], "replace": True}).json()
    assert replaced["replaced"] and replaced["item_count"] == 1


def test_unknown_names_are_404(server, boss):
    client = _openai(server, "boss")
    for call in (lambda: client.get("/eval-sets/nope", cast_to=object),
                 lambda: client.delete("/eval-sets/nope", cast_to=object)):
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        assert caught.value.body["param"] == "name" and "nope" in caught.value.body["message"]


def test_the_gate_sees_what_the_api_registered(server, boss):
    _, _, settings = server
    assert boss.post("/v1/eval-sets", json={"name": "facts", "items": ITEMS}).status_code == 200
    store = open_store(settings.database_url)
    try:
        cases = registered_eval_cases(store)
    finally:
        store.close()
    assert cases == {"facts": [EvalCase(ITEMS[0]["messages"], "Velmora"),
                               EvalCase([{"role": "user", "content": "Once upon a"}], "time")]}
