"""Least privilege (issue 10 #7): the report's cross-user totals are for annotators and admins,
model-version internals (filesystem paths, recipes, histories) for admins, and an annotator gives
feedback on another user's message only once it is in review scope (somebody's feedback put it
in the review queue)."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.api.routes.model_versions import _registry
from app.core.config import Settings
from app.store import crud_chat
from app.store.crud_chat import ExchangeRecord, MessageRecord

ADMIN_KEY = "fw-privilege-admin-key"
ROLES = {"alice": "user", "bob": "user", "ann": "annotator"}


@pytest.fixture
def api(tmp_path):
    with TestClient(create_app(Settings(data_dir=tmp_path, api_keys=[ADMIN_KEY]))) as client:
        client.keys = {"admin": ADMIN_KEY}
        for username, role in ROLES.items():
            _post(client, ADMIN_KEY, "/v1/users",
                  {"username": username, "password": "long-enough", "role": role})
            client.keys[username] = _post(client, ADMIN_KEY, "/v1/api-keys",
                                          {"username": username}).json()["key"]
        yield client


def _post(client: TestClient, key: str, path: str, body: dict):
    return client.post(path, json=body, headers={"Authorization": f"Bearer {key}"})


def _get(client: TestClient, key: str, path: str):
    return client.get(path, headers={"Authorization": f"Bearer {key}"})


def _alices_answer(api) -> str:
    state = api.app.state.flywheel
    with state.store.transaction() as session:
        alice = _user_id(session, "alice")
        crud_chat.record_exchange(session, exchange=ExchangeRecord(
            conversation_id="conv_alice", user_id=alice, create_conversation=True, title="private",
            model="m", messages=[MessageRecord(id="msg_q", role="user", content="my secret", parent_id=None),
                                 MessageRecord(id="msg_a", role="assistant", content="noted",
                                               parent_id="msg_q")]))
    return "msg_a"


def _user_id(session, username: str) -> str:
    from app.store.crud_users import get_user_by_username

    return get_user_by_username(session, username=username).id


def test_annotators_give_feedback_on_others_messages_only_in_review_scope(api):
    message_id = _alices_answer(api)
    feedback = {"message_id": message_id, "thumbs": "down"}
    for outsider in ("ann", "bob"):
        refused = _post(api, api.keys[outsider], "/v1/feedback", feedback)
        assert refused.status_code == 404 and refused.json()["error"]["param"] == "message_id"
    assert _post(api, api.keys["alice"], "/v1/feedback", feedback).status_code == 200
    # alice's feedback puts the answer in the review queue: now the annotator may add hers
    assert _post(api, api.keys["ann"], "/v1/feedback", {**feedback, "comment": "agree"}).status_code == 200
    assert _post(api, api.keys["bob"], "/v1/feedback", feedback).status_code == 404
    assert _post(api, ADMIN_KEY, "/v1/feedback", feedback).status_code == 200


def test_the_report_is_for_annotators_and_admins(api):
    refused = _get(api, api.keys["alice"], "/v1/report")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert _get(api, api.keys["ann"], "/v1/report").status_code == 200
    assert _get(api, ADMIN_KEY, "/v1/report").status_code == 200


def test_model_version_internals_are_for_admins(api, tmp_path):
    secret_path = str(tmp_path / "checkpoints" / "mv-0001")
    _registry(api.app.state.flywheel).register("candidate", secret_path, recipe={"lr": 1e-4})
    (public,) = _get(api, api.keys["alice"], "/v1/model-versions").json()["data"]
    assert public["id"] and public["status"] and "metrics" in public
    assert not {"path", "recipe", "history"} & public.keys()
    assert secret_path not in _get(api, api.keys["ann"], "/v1/model-versions").text
    (full,) = _get(api, ADMIN_KEY, "/v1/model-versions").json()["data"]
    assert full["path"] == secret_path and full["recipe"] == {"lr": 1e-4}
