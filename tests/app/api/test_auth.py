"""API keys, login sessions and roles, on an app with keys enabled (no model needed)."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.core.config import Settings

ADMIN_KEY = "fw-test-admin-key-123"


@pytest.fixture
def api(tmp_path):
    app = create_app(Settings(data_dir=tmp_path, api_keys=[ADMIN_KEY]))
    with TestClient(app) as client:
        yield client


def _auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_v1_needs_a_key_but_health_and_metrics_are_open(api):
    for headers in ({}, _auth("wrong-key"), {"Authorization": "Basic abc"}):
        response = api.get("/v1/models", headers=headers)
        assert response.status_code == 401 and response.json()["error"]["type"] == "authentication_error"
    assert api.get("/v1/models", headers=_auth(ADMIN_KEY)).status_code == 200
    assert api.get("/health").status_code == 200
    assert api.get("/metrics").status_code == 200


def test_admin_creates_users_who_log_in(api):
    created = api.post("/v1/users", headers=_auth(ADMIN_KEY),
                       json={"username": "ann", "password": "annotates", "role": "annotator"})
    assert created.status_code == 200 and created.json()["role"] == "annotator"
    assert "password" not in created.text
    assert api.post("/v1/users", headers=_auth(ADMIN_KEY),
                    json={"username": "ann", "password": "another1"}).status_code == 409
    assert api.post("/v1/auth/login", json={"username": "ann", "password": "nope"}).status_code == 401
    login = api.post("/v1/auth/login", json={"username": "ann", "password": "annotates"}).json()
    assert login["role"] == "annotator" and login["expires_at"]
    token = login["token"]
    assert api.get("/v1/conversations", headers=_auth(token)).status_code == 200
    forbidden = api.post("/v1/users", headers=_auth(token),
                         json={"username": "eve", "password": "password1"})
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "forbidden"


def test_api_keys_are_shown_once_and_identify_their_user(api):
    api.post("/v1/users", headers=_auth(ADMIN_KEY), json={"username": "bob", "password": "bobbobbob"})
    key = api.post("/v1/api-keys", headers=_auth(ADMIN_KEY), json={"username": "bob"}).json()["key"]
    created = api.post("/v1/conversations", headers=_auth(key), json={"title": "bob's"}).json()
    assert [c["id"] for c in api.get("/v1/conversations", headers=_auth(key)).json()["data"]] == [created["id"]]
    assert api.get("/v1/conversations", headers=_auth(ADMIN_KEY)).json()["data"] == []
    other = api.post("/v1/api-keys", headers=_auth(ADMIN_KEY), json={}).json()["key"]
    assert other != key
    assert api.delete(f"/v1/conversations/{created['id']}", headers=_auth(other)).status_code == 404
    assert api.post("/v1/api-keys", headers=_auth(key), json={}).status_code == 403


def test_default_secrets_are_refused():
    with pytest.raises(ValueError, match="API keys"):
        Settings(api_keys=["changeme"])
