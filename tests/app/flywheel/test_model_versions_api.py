"""The model-versions and flywheel routes on a live server (real app, real store, real registry)."""
from __future__ import annotations

import httpx
import openai
import pytest

from app.flywheel.runs import RunStatus
from model.registry import VersionStatus
from tests.utils.registry import data_registry
from tests.app.ui.live_servers import live_api


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    with live_api(tmp_path_factory.mktemp("model-versions-api")) as server:
        yield server


def _admin(api) -> dict:
    return {"Authorization": f"Bearer {api.admin_key}"}


def test_list_promote_and_rollback(api):
    registry = data_registry(api.data_dir)
    base = registry.register("base", "/models/base", status=VersionStatus.PRODUCTION, version_id="mv-a")
    child = registry.register("child", "/models/child", parent_id=base.id, version_id="mv-b",
                              dataset_snapshot_id="ds_1", metrics={"eval": {"held_out_loss": 0.5}})
    listed = httpx.get(f"{api.url}/v1/model-versions", headers=_admin(api)).json()["data"]
    by_id = {v["id"]: v for v in listed}
    assert by_id["mv-b"]["parent_id"] == "mv-a" and by_id["mv-b"]["status"] == VersionStatus.CANDIDATE
    assert by_id["mv-b"]["dataset_snapshot_id"] == "ds_1"
    assert {"recipe", "metrics", "created_at", "path"} <= set(by_id["mv-b"])

    promoted = httpx.post(f"{api.url}/v1/model-versions/{child.id}/promote", headers=_admin(api))
    assert promoted.status_code == 200 and promoted.json()["status"] == VersionStatus.PRODUCTION
    assert registry.get(base.id).status == VersionStatus.RETIRED
    rolled = httpx.post(f"{api.url}/v1/model-versions/{child.id}/rollback", headers=_admin(api))
    assert rolled.status_code == 200 and rolled.json()["status"] == VersionStatus.RETIRED
    assert registry.production().id == base.id

    again = httpx.post(f"{api.url}/v1/model-versions/{child.id}/promote", headers=_admin(api))
    assert again.status_code == 409 and again.json()["error"]["code"] == "invalid_transition"
    missing = httpx.post(f"{api.url}/v1/model-versions/mv-nope/promote", headers=_admin(api))
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "id"


def test_only_admins_change_versions_or_iterate(api):
    user = {"Authorization": f"Bearer {api.token_for('alice')}"}
    assert httpx.get(f"{api.url}/v1/model-versions", headers=user).status_code == 200
    assert httpx.post(f"{api.url}/v1/model-versions/mv-a/promote", headers=user).status_code == 403
    assert httpx.post(f"{api.url}/v1/flywheel/iterate", headers=user).status_code == 403


def test_iterate_queues_a_run_on_the_embedded_broker(api):
    queued = httpx.post(f"{api.url}/v1/flywheel/iterate", headers=_admin(api))
    assert queued.status_code == 200, queued.text
    run_id = queued.json()["id"]
    runs = httpx.get(f"{api.url}/v1/flywheel/runs", headers=_admin(api)).json()["data"]
    assert any(r["id"] == run_id and r["status"] == RunStatus.QUEUED for r in runs)
    assert (api.data_dir / "broker.db").is_file()  # the message waits in the SQLite broker


def test_a_new_server_answers_as_the_registered_base_version_from_the_first_request(tmp_path):
    """A version id names one set of weights: the served model is `mv-base` before any iteration,
    not its public name (which the flywheel's first fine-tune would have renamed it to)."""
    from app.flywheel.settings import FlywheelSettings
    from model.registry import BASE_VERSION_ID
    from tests.app.ui.live_servers import TINY_MODEL

    with live_api(tmp_path) as server:
        headers = _admin(server)
        first = httpx.post(f"{server.url}/v1/completions", headers=headers, json={
            "model": server.model, "prompt": "Once", "max_tokens": 4, "temperature": 0})
        assert first.status_code == 200, first.text
        assert first.json()["model_version"] == BASE_VERSION_ID
        assert first.json()["model"] == server.model  # OpenAI clients get the name they asked for
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.admin_key, max_retries=0)
        chunks = list(client.chat.completions.create(
            model=server.model, messages=[{"role": "user", "content": "Hi"}], max_tokens=3,
            temperature=0, stream=True))
        assert {c.model for c in chunks} == {server.model}
        assert {c.model_extra["model_version"] for c in chunks} == {BASE_VERSION_ID}
        (message,) = [m for m in httpx.get(
            f"{server.url}/v1/conversations/{chunks[0].model_extra['conversation_id']}",
            headers=headers).json()["messages"] if m["role"] == "assistant"]
        assert message["model_version"] == BASE_VERSION_ID  # stored under the version id
        (base,) = httpx.get(f"{server.url}/v1/model-versions", headers=headers).json()["data"]
        assert base["id"] == BASE_VERSION_ID and base["status"] == VersionStatus.PRODUCTION
        assert base["path"] == str(TINY_MODEL.resolve()) and base["name"] == server.model
        public = httpx.get(f"{server.url}/v1/models", headers=headers).json()["data"][0]
        assert public["id"] == server.model and public["version"] == BASE_VERSION_ID
    # The worker, on the same data dir, starts from that very version (one settings derivation).
    worker_settings = FlywheelSettings(data_dir=tmp_path)
    registry = data_registry(worker_settings.data_dir, worker_settings.database_url)
    assert registry.production().id == BASE_VERSION_ID
