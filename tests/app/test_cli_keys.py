"""`flywheel keys list|create|revoke` against a store, checked through the API a server on the
same data dir answers (a fresh app each time, so no credential cache hides a change)."""
from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.cli import main
from app.core.config import Settings


def _flywheel(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _status(data_dir, key: str) -> int:
    with TestClient(create_app(Settings(data_dir=data_dir, api_keys=["fw-bootstrap-admin-1"]))) as api:
        return api.get("/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code


@pytest.fixture
def data_dir(tmp_path, capsys):
    _status(tmp_path, "none")  # migrated store with the bootstrap user "admin"
    return tmp_path


def test_create_list_and_revoke(data_dir, capsys):
    code, key, err = _flywheel(capsys, "keys", "create", "--name", "ci", "--data-dir", str(data_dir))
    key = key.strip()
    assert code == 0 and key.startswith("fw-") and "shown only now" in err
    assert _status(data_dir, key) == 200
    code, listing, _ = _flywheel(capsys, "keys", "list", "--data-dir", str(data_dir))
    header, *rows = listing.strip().splitlines()
    assert code == 0 and "LAST USED" in header and "EXPIRES" in header
    (row,) = [r for r in rows if " ci " in r]
    key_id = row.split()[0]
    assert "active" in row and row.split()[1] == "admin"
    assert _flywheel(capsys, "keys", "revoke", key_id, "--data-dir", str(data_dir))[:2] == (0, f"revoked {key_id}\n")
    assert _status(data_dir, key) == 401
    _code, listing, _ = _flywheel(capsys, "keys", "list", "--data-dir", str(data_dir))
    assert "revoked" in next(r for r in listing.splitlines() if r.startswith(key_id))
    assert _flywheel(capsys, "keys", "revoke", key_id, "--data-dir", str(data_dir))[1] == \
        f"{key_id} was already revoked\n"


def test_a_key_with_an_expiry_stops_working_then(data_dir, capsys):
    code, key, err = _flywheel(capsys, "keys", "create", "--expires-in", "2s", "--data-dir", str(data_dir))
    assert code == 0 and "expires" in err
    assert _status(data_dir, key.strip()) == 200
    time.sleep(2.1)
    assert _status(data_dir, key.strip()) == 401
    _code, listing, _ = _flywheel(capsys, "keys", "list", "--data-dir", str(data_dir))
    assert "expired" in listing


BAD_INPUT = [
    (["create", "--expires-in", "30x"], "--expires-in must be a positive duration"),
    (["create", "--expires-in", "0d"], "--expires-in must be a positive duration"),
    (["create", "--expires-at", "2001-01-01"], "is in the past"),
    (["create", "--expires-at", "next tuesday"], "--expires-at must be a date"),
    (["create", "--expires-in", "1d", "--expires-at", "2999-01-01"], "not both"),
    (["create", "--user", "nobody"], "no user named 'nobody'"),
    (["revoke", "key_missing"], "no API key with id 'key_missing'"),
]


def test_bad_input_exits_2_with_one_line_and_stores_nothing(data_dir, capsys):
    before = _flywheel(capsys, "keys", "list", "--data-dir", str(data_dir))[1]
    for args, message in BAD_INPUT:
        code, out, err = _flywheel(capsys, "keys", *args, "--data-dir", str(data_dir))
        assert (code, out) == (2, ""), args
        assert len(err.strip().splitlines()) == 1 and message in err, err
    assert _flywheel(capsys, "keys", "list", "--data-dir", str(data_dir))[1] == before


def test_a_key_created_with_a_priority_class_keeps_it(data_dir, capsys):
    code, _key, err = _flywheel(capsys, "keys", "create", "--name", "nightly", "--priority", "batch",
                                "--data-dir", str(data_dir))
    assert code == 0 and "batch priority" in err
    _code, listing, _ = _flywheel(capsys, "keys", "list", "--data-dir", str(data_dir))
    header, *rows = listing.strip().splitlines()
    assert header.split()[-1] == "PRIORITY"
    assert next(r for r in rows if " nightly " in r).split()[-1] == "batch"
    code, _out, err = _flywheel(capsys, "keys", "create", "--priority", "urgent",
                                "--data-dir", str(data_dir))
    assert code == 2 and "--priority must be one of interactive, batch" in err
