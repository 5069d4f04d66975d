"""First run without --api-key or --no-auth: login required, the first visitor creates the admin
account (once), and usernames are normalized and checked for look-alikes (no model needed)."""
from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.core.config import Settings


@pytest.fixture
def api(tmp_path):
    with TestClient(create_app(Settings(data_dir=tmp_path, require_login=True))) as client:
        yield client


def _auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_a_new_install_needs_a_sign_in_and_offers_the_admin_setup_once(api):
    assert api.get("/v1/models").status_code == 401  # no anonymous "local" admin any more
    assert api.get("/v1/auth/status").json() == {"login_required": True, "needs_admin": True}
    first = api.post("/v1/auth/setup", json={"username": "root", "password": "first-pw-123"})
    assert first.status_code == 200 and first.json()["role"] == "admin"
    assert api.get("/v1/models", headers=_auth(first.json()["token"])).status_code == 200
    assert api.get("/v1/auth/status").json()["needs_admin"] is False
    again = api.post("/v1/auth/setup", json={"username": "mallory", "password": "second-pw-123"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "setup_done"
    login = api.post("/v1/auth/login", json={"username": "root", "password": "first-pw-123"})
    assert login.status_code == 200
    assert api.post("/v1/auth/login", json={"username": "mallory", "password": "second-pw-123"}
                    ).status_code == 401


def test_two_visitors_at_once_make_one_admin(api):
    codes: list[int] = []
    barrier = threading.Barrier(4)

    def setup(i: int) -> None:
        barrier.wait()
        codes.append(api.post("/v1/auth/setup", json={"username": f"admin{i}",
                                                      "password": "racing-pw-123"}).status_code)
    threads = [threading.Thread(target=setup, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200, 409, 409, 409]


def test_open_servers_say_so(tmp_path):
    with TestClient(create_app(Settings(data_dir=tmp_path))) as open_api:
        assert open_api.get("/v1/auth/status").json()["login_required"] is False
        assert open_api.get("/v1/models").status_code == 200


@pytest.mark.parametrize("username, reason", [
    ("ad\u200bmin", "U+200B"),  # zero-width space: shows as "admin"
    ("\u202eevil", "U+202E"),  # right-to-left override
    ("bo b", "U+0020"),
    ("\u0430dmin", "confused"),  # Cyrillic a
    ("ADMIN", "confused"),
    ("adm1n", None),  # a digit for a letter reads differently enough in lower case: allowed
])
def test_usernames_with_hidden_characters_or_look_alikes_are_refused(api, username, reason):
    token = api.post("/v1/auth/setup", json={"username": "admin", "password": "first-pw-123"}
                     ).json()["token"]
    response = api.post("/v1/users", headers=_auth(token),
                        json={"username": username, "password": "long-enough", "role": "user"})
    if reason is None:
        assert response.status_code == 200
        return
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "username" and reason in error["message"]


def test_usernames_are_stored_in_nfkc(api):
    token = api.post("/v1/auth/setup", json={"username": "admin", "password": "first-pw-123"}
                     ).json()["token"]
    created = api.post("/v1/users", headers=_auth(token),
                       json={"username": "\uff42\uff4f\uff42", "password": "long-enough"})  # fullwidth
    assert created.json()["username"] == "bob"
    duplicate = api.post("/v1/users", headers=_auth(token),
                         json={"username": "bob", "password": "long-enough"})
    assert duplicate.status_code == 409 and duplicate.json()["error"]["param"] == "username"
    # the person types their name as they created it, full-width: it signs in as "bob"
    login = api.post("/v1/auth/login", json={"username": "\uff42\uff4f\uff42", "password": "long-enough"})
    assert login.status_code == 200 and login.json()["role"] == "user"


def test_with_api_keys_the_first_admin_can_take_the_bootstrap_admin_name(tmp_path):
    """`--api-key` keys belong to a password-less `admin`; the first-run form may name it."""
    key = "fw-first-run-key-123"
    with TestClient(create_app(Settings(data_dir=tmp_path, api_keys=[key]))) as api:
        assert api.get("/v1/auth/status").json() == {"login_required": True, "needs_admin": True}
        made = api.post("/v1/auth/setup", json={"username": "admin", "password": "first-pw-123"})
        assert made.status_code == 200 and made.json()["role"] == "admin"
        assert api.post("/v1/auth/login", json={"username": "admin", "password": "first-pw-123"}
                        ).status_code == 200
        assert api.get("/v1/models", headers=_auth(key)).status_code == 200  # the key still works
