"""Model registry: lineage, lifecycle, atomic persistence, concurrent writers."""
from __future__ import annotations

import json
import multiprocessing

import pytest

from model.registry import BASE_VERSION_ID, ModelRegistry, TransitionError, VersionStatus


def test_lineage_and_lifecycle_survive_a_restart(tmp_path):
    reg = ModelRegistry(tmp_path)
    base = reg.register("demo", "/models/demo", status=VersionStatus.PRODUCTION, recipe={"lr": 1e-3})
    cand = reg.register("demo-it1", "/models/it1", parent_id=base.id, dataset_snapshot_id="ds-1",
                        metrics={"held_out_loss": 0.5})
    assert cand.status == VersionStatus.CANDIDATE
    reg.start_canary(cand.id)
    reg.promote(cand.id, reason="gate passed")
    reopened = ModelRegistry(tmp_path)  # a new process reads the same file
    assert reopened.production().id == cand.id
    assert reopened.get(base.id).status == VersionStatus.RETIRED
    version = reopened.get(cand.id)
    assert (version.parent_id, version.dataset_snapshot_id) == (base.id, "ds-1")
    assert [h["status"] for h in version.history] == [
        VersionStatus.CANDIDATE, VersionStatus.CANARY, VersionStatus.PRODUCTION]
    assert version.status is VersionStatus.PRODUCTION  # read back as the enum, not a bare string
    stored = json.loads((tmp_path / "registry.json").read_text())["versions"]
    assert {v["id"]: v["status"] for v in stored} == {base.id: "retired", cand.id: "production"}
    assert version.history[-1]["reason"] == "gate passed"


def test_rollback_restores_the_previous_production(tmp_path):
    reg = ModelRegistry(tmp_path)
    v1 = reg.register("v1", "/m/1", status=VersionStatus.PRODUCTION)
    v2 = reg.register("v2", "/m/2", parent_id=v1.id)
    reg.promote(v2.id)
    serving = reg.rollback(v2.id, reason="thumbs-up rate fell")
    assert serving.id == v1.id and reg.production().id == v1.id
    assert reg.get(v2.id).status == VersionStatus.RETIRED
    assert reg.get(v2.id).history[-1]["reason"] == "thumbs-up rate fell"
    with pytest.raises(TransitionError):
        reg.rollback(v1.id)  # nothing earlier to restore
    with pytest.raises(TransitionError):
        reg.promote(v2.id)  # retired versions come back only through rollback


def test_rejected_canary_keeps_production_and_reason(tmp_path):
    reg = ModelRegistry(tmp_path)
    v1 = reg.register("v1", "/m/1", status=VersionStatus.PRODUCTION)
    v2 = reg.register("v2", "/m/2", parent_id=v1.id)
    reg.start_canary(v2.id)
    reg.reject(v2.id, "regressed arithmetic by 5.0 points")
    assert reg.production().id == v1.id and reg.canary() is None
    assert reg.get(v2.id).history[-1]["reason"].startswith("regressed")


def test_bad_requests_are_errors(tmp_path):
    reg = ModelRegistry(tmp_path)
    with pytest.raises(KeyError):
        reg.promote("mv-9999")
    with pytest.raises(ValueError, match="parent"):
        reg.register("x", "/m", parent_id="nope")
    with pytest.raises(ValueError, match="status must be one of"):
        reg.register("x", "/m", status="live")
    (tmp_path / "registry.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt"):
        reg.list()


def test_register_is_idempotent_by_id(tmp_path):
    reg = ModelRegistry(tmp_path)
    first = reg.register("a", "/m/a", version_id="run-42")
    again = reg.register("a", "/m/a", version_id="run-42")
    assert first.id == again.id == "run-42" and len(reg.list()) == 1


def test_ensure_production_registers_the_base_once_and_keeps_a_later_production(tmp_path):
    reg = ModelRegistry(tmp_path)
    base = reg.ensure_production("/models/served", name="flywheel-demo")
    assert (base.id, base.status, base.name) == (BASE_VERSION_ID, VersionStatus.PRODUCTION, "flywheel-demo")
    assert reg.ensure_production("/models/other").path == "/models/served"  # already there
    child = reg.register("ft", "/models/ft", parent_id=base.id)
    reg.promote(child.id)
    assert reg.ensure_production("/models/served").id == child.id  # a restart keeps the promotion
    assert len(reg.list()) == 2


def _ensure_base(root: str, _worker: int) -> None:
    ModelRegistry(root).ensure_production("/models/served")


def test_server_and_worker_racing_to_register_the_base_register_it_once(tmp_path):
    procs = [multiprocessing.get_context("fork").Process(target=_ensure_base,
                                                         args=(str(tmp_path), w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    (base,) = ModelRegistry(tmp_path).list()
    assert base.id == BASE_VERSION_ID and len(base.history) == 1


def _register_many(root: str, worker: int) -> None:
    reg = ModelRegistry(root)
    for i in range(10):
        reg.register(f"w{worker}-{i}", "/m", version_id=f"w{worker}-{i}")


def test_concurrent_processes_never_lose_an_update(tmp_path):
    procs = [multiprocessing.get_context("fork").Process(target=_register_many,
                                                         args=(str(tmp_path), w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    data = json.loads((tmp_path / "registry.json").read_text())
    assert len(data["versions"]) == 30
    assert not list(tmp_path.glob(".registry.*.tmp")) and not list(tmp_path.glob(".registry.[!l]*"))
