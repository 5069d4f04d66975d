"""API keys, login sessions and roles, on an app with keys enabled (no model needed): key
rotation, revocation, expiry and last use, and failed-login throttling."""
from __future__ import annotations

import time

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


def test_without_keys_a_malformed_or_empty_bearer_header_is_ignored(tmp_path):
    """lm_eval sends "Authorization: Bearer " when OPENAI_API_KEY is unset."""
    with TestClient(create_app(Settings(data_dir=tmp_path))) as open_api:
        for headers in ({"Authorization": "Bearer "}, {"Authorization": "Basic abc"}):
            assert open_api.get("/v1/models", headers=headers).status_code == 200


def test_default_secrets_are_refused():
    with pytest.raises(ValueError, match="API keys"):
        Settings(api_keys=["changeme"])


# --- key lifecycle: rotation, revocation, expiry, last use ------------------------------------

NEW_KEY = "fw-test-admin-key-456"


def _serve(data_dir, keys: list[str], **settings) -> TestClient:
    return TestClient(create_app(Settings(data_dir=data_dir, api_keys=keys, **settings)))


def test_rotating_the_api_key_revokes_the_previous_one(tmp_path):
    with _serve(tmp_path, [ADMIN_KEY]) as first:
        assert first.get("/v1/models", headers=_auth(ADMIN_KEY)).status_code == 200
    with _serve(tmp_path, [NEW_KEY]) as second:
        old = second.get("/v1/models", headers=_auth(ADMIN_KEY))
        assert old.status_code == 401 and old.json()["error"]["code"] == "invalid_api_key"
        assert second.post("/v1/users", headers=_auth(ADMIN_KEY),
                           json={"username": "mallory", "password": "mallory1"}).status_code == 401
        assert second.get("/v1/models", headers=_auth(NEW_KEY)).status_code == 200
        keys = {k["status"]: k for k in second.get("/v1/api-keys", headers=_auth(NEW_KEY)).json()["data"]}
        assert keys["revoked"]["bootstrap"] and keys["active"]["bootstrap"]
    # going back to a key that was rotated out does not resurrect it
    with _serve(tmp_path, [ADMIN_KEY, NEW_KEY]) as third:
        assert third.get("/v1/models", headers=_auth(ADMIN_KEY)).status_code == 401
        assert third.get("/v1/models", headers=_auth(NEW_KEY)).status_code == 200


def test_keys_stored_by_earlier_versions_are_rotated_out_too(tmp_path):
    """A database written before key lifecycles existed: its `--api-key` rows (named
    'configured') become bootstrap keys in the migration, so the next rotation revokes them."""
    from alembic import command
    from sqlalchemy import text

    from app.store.crud_users import hash_token
    from app.store.migrate import alembic_config
    from app.store.session import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'flywheel.db'}")
    command.upgrade(alembic_config(engine), "0002_review")
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO users (id, username, role, created_at) "
                                "VALUES ('u1', 'admin', 'admin', CURRENT_TIMESTAMP)"))
        connection.execute(text("INSERT INTO api_keys (id, key_hash, user_id, name, created_at) "
                                "VALUES ('k1', :h, 'u1', 'configured', CURRENT_TIMESTAMP)"),
                           {"h": hash_token(ADMIN_KEY)})
    engine.dispose()
    with _serve(tmp_path, [NEW_KEY]) as client:
        assert client.get("/v1/models", headers=_auth(ADMIN_KEY)).status_code == 401
        assert client.get("/v1/models", headers=_auth(NEW_KEY)).status_code == 200


def test_revoking_a_key_through_the_api_applies_at_once_despite_the_cache(api):
    key = api.post("/v1/api-keys", headers=_auth(ADMIN_KEY), json={"name": "ci"}).json()
    assert api.get("/v1/models", headers=_auth(key["key"])).status_code == 200  # now cached
    revoked = api.delete(f"/v1/api-keys/{key['id']}", headers=_auth(ADMIN_KEY))
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    assert api.get("/v1/models", headers=_auth(key["key"])).status_code == 401
    assert api.delete("/v1/api-keys/key_nope", headers=_auth(ADMIN_KEY)).status_code == 404
    assert api.delete(f"/v1/api-keys/{key['id']}", headers=_auth(key["key"])).status_code == 401


def test_an_expired_key_is_refused_even_when_cached(api):
    from datetime import timedelta

    from app.store import crud_users
    from app.store.base import utcnow

    state = api.app.state.flywheel
    with state.store.transaction() as session:
        admin = crud_users.get_user_by_username(session, username="admin")
        _row, key = crud_users.create_api_key(session, user_id=admin.id,
                                              expires_at=utcnow() + timedelta(seconds=1))
    assert api.get("/v1/models", headers=_auth(key)).status_code == 200
    time.sleep(1.1)
    assert api.get("/v1/models", headers=_auth(key)).status_code == 401
    listed = api.get("/v1/api-keys", headers=_auth(ADMIN_KEY)).json()["data"]
    assert [k["status"] for k in listed if k["expires_at"]] == ["expired"]


def test_last_use_is_written_in_one_batch_not_by_each_request(tmp_path):
    from sqlalchemy import event

    updates: list[str] = []
    with _serve(tmp_path, [ADMIN_KEY]) as client:
        engine = client.app.state.flywheel.store.engine
        record = lambda _conn, _cursor, statement, *_: updates.append(statement)  # noqa: E731
        event.listen(engine, "before_cursor_execute", record)
        for _ in range(20):
            assert client.get("/v1/models", headers=_auth(ADMIN_KEY)).status_code == 200
        assert not [s for s in updates if s.lstrip().upper().startswith("UPDATE API_KEYS")]
    # the server's shutdown writes what it collected: one UPDATE for the one key used
    assert len([s for s in updates if s.lstrip().upper().startswith("UPDATE API_KEYS")]) == 1
    with _serve(tmp_path, [ADMIN_KEY]) as client:
        (key,) = client.get("/v1/api-keys", headers=_auth(ADMIN_KEY)).json()["data"]
        assert key["last_used_at"] is not None


# --- failed logins ---------------------------------------------------------------------------

def test_failed_logins_are_throttled_per_username_and_client(api):
    api.post("/v1/users", headers=_auth(ADMIN_KEY), json={"username": "ann", "password": "annotates"})
    api.post("/v1/users", headers=_auth(ADMIN_KEY), json={"username": "bob", "password": "bobbobbob"})
    for _ in range(5):
        assert api.post("/v1/auth/login", json={"username": "ann", "password": "guess"}).status_code == 401
    throttled = api.post("/v1/auth/login", json={"username": "ann", "password": "annotates"})
    assert throttled.status_code == 429 and throttled.json()["error"]["type"] == "rate_limit_error"
    assert 1 <= int(throttled.headers["retry-after"]) <= 300
    # another account from the same client is not locked out
    assert api.post("/v1/auth/login", json={"username": "bob", "password": "bobbobbob"}).status_code == 200


def test_a_successful_login_clears_earlier_failures(api):
    api.post("/v1/users", headers=_auth(ADMIN_KEY), json={"username": "ann", "password": "annotates"})
    for _ in range(3):
        for _ in range(4):
            api.post("/v1/auth/login", json={"username": "ann", "password": "guess"})
        assert api.post("/v1/auth/login",
                        json={"username": "ann", "password": "annotates"}).status_code == 200
