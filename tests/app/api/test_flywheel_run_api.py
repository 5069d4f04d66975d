"""`GET /v1/flywheel/runs/{run_id}` on a live server (real app, real store, the tiny model):
one run record exactly as the list shows it to the same caller (whole for admins, status and step
names for users), read back from the database; an unknown id is a 404 naming `run_id`."""
from __future__ import annotations

import httpx
import pytest

from app.api.main import create_app
from app.core.config import Settings
from app.flywheel.runs import RunStatus, open_runs
from app.serving.model_host import ModelHost
from tests.app.api.conftest import ServerThread, load_model

ADMIN_KEY = "sk-run-api-admin-0123456789"
PASSWORD = "correct horse battery"
LONG_ID = "r" * 129  # longer than any run id can be


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    host = ModelHost()
    host.add(load_model())
    settings = Settings(data_dir=tmp_path_factory.mktemp("run-api"), api_keys=[ADMIN_KEY])
    app = create_app(settings, host=host)
    with ServerThread(app) as url:
        records = open_runs(settings.data, engine=app.state.flywheel.store.engine)
        records.update("it-a", status=RunStatus.RUNNING, steps={
            "build_dataset": {"finished_at": 1.5, "snapshot": {"id": "ds-1"}}})
        records.update("it-a", status=RunStatus.FAILED, error=RuntimeError("boom"),
                       steps={"finetune": {"finished_at": 2.5, "path": "/models/k"}})
        records.update("it-b", status=RunStatus.QUEUED)
        yield url, records


@pytest.fixture(scope="module")
def admin(server):
    url, _ = server
    with httpx.Client(base_url=url, timeout=60,
                      headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
        yield client


@pytest.fixture(scope="module")
def user(server, admin):
    url, _ = server
    admin.post("/v1/users", json={"username": "alice", "password": PASSWORD}).raise_for_status()
    token = httpx.post(f"{url}/v1/auth/login", json={"username": "alice", "password": PASSWORD}
                       ).raise_for_status().json()["token"]
    with httpx.Client(base_url=url, timeout=60,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def _listed(client: httpx.Client, run_id: str) -> dict:
    (run,) = [r for r in client.get("/v1/flywheel/runs").json()["data"] if r["id"] == run_id]
    return run


@pytest.mark.parametrize("run_id", ["it-a", "it-b"])
def test_an_admin_reads_the_whole_record_as_the_list_has_it(server, admin, run_id):
    _, records = server
    response = admin.get(f"/v1/flywheel/runs/{run_id}")
    assert response.status_code == 200, response.text
    assert response.json() == _listed(admin, run_id) == records.read(run_id)


def test_the_record_holds_every_step_and_the_error(admin):
    run = admin.get("/v1/flywheel/runs/it-a").json()
    assert (run["status"], run["error"]) == ("failed", "boom")
    assert run["steps"] == {"build_dataset": {"finished_at": 1.5, "snapshot": {"id": "ds-1"}},
                            "finetune": {"finished_at": 2.5, "path": "/models/k"}}


def test_a_user_reads_status_and_step_names_only(user):
    run = user.get("/v1/flywheel/runs/it-a").json()
    assert run == _listed(user, "it-a")
    assert run["steps"] == ["build_dataset", "finetune"] and "error" not in run


@pytest.mark.parametrize("run_id", ["it-nope", LONG_ID])
def test_an_unknown_run_is_a_404_naming_run_id(admin, run_id):
    response = admin.get(f"/v1/flywheel/runs/{run_id}")
    assert response.status_code == 404
    assert response.json() == {"error": {"message": f"No flywheel run '{run_id}'.",
                                         "type": "not_found_error", "param": "run_id",
                                         "code": None}}


def test_reading_a_run_needs_a_sign_in(server):
    url, _ = server
    assert httpx.get(f"{url}/v1/flywheel/runs/it-a").status_code == 401
