"""RunPayload: what one flywheel step hands the next survives the JSON a broker carries."""
from __future__ import annotations

import json

import pytest

from app.flywheel.payload import Candidate, CanaryVerdict, GateResult, RunPayload, SnapshotInfo
from app.flywheel.runs import RunStatus
from app.flywheel.settings import FlywheelSettings


def _full_payload(tmp_path) -> RunPayload:
    settings = FlywheelSettings(data_dir=tmp_path, canary_soak_s=5.0, recipe={"num_epochs": 3})
    return RunPayload(
        settings=settings, run_id="it-1", started_at=1700000000.5, base_version_id="mv-base",
        snapshot=SnapshotInfo(id="ds-1", version=2, content_hash="abc", counts={"sft": 3, "dpo": 1}),
        candidate=Candidate(key="k" * 16, path=str(tmp_path / "models" / "k"),
                            train={"stages": {"sft": {"steps": 4}}}),
        metrics={"passed": True, "reasons": ["t improved"], "skill": {"num_groups": 2}},
        version_id="mv-kkkk", gate=GateResult(passed=True, reasons=["t improved"]),
        canary_until=1700000005.5,
        canary=CanaryVerdict(healthy=False, canary_feedback=7, reason="canary thumbs-up 10%"),
        status=RunStatus.REJECTED, wall_s=12.3)


def test_a_full_payload_round_trips_through_json(tmp_path):
    payload = _full_payload(tmp_path)
    back = RunPayload.from_dict(json.loads(json.dumps(payload.to_dict())))
    assert back == payload
    assert isinstance(back.gate, GateResult) and isinstance(back.snapshot, SnapshotInfo)
    assert back.status is RunStatus.REJECTED and back.settings.recipe["num_epochs"] == 3


def test_parts_not_filled_in_are_left_out(tmp_path):
    payload = RunPayload(settings=FlywheelSettings(data_dir=tmp_path), run_id="it-2", started_at=1.0)
    raw = payload.to_dict()
    assert set(raw) == {"settings", "run_id", "started_at"}
    assert RunPayload.from_dict(raw) == payload and payload.skip is None


def test_replace_returns_a_copy_and_leaves_the_input_alone(tmp_path):
    payload = _full_payload(tmp_path)
    skipped = payload.replace(skip="nothing to learn")
    assert skipped.skip == "nothing to learn" and payload.skip is None


def test_an_unknown_field_is_an_error(tmp_path):
    raw = {**_full_payload(tmp_path).to_dict(), "gate_passed": True}
    with pytest.raises(ValueError, match="gate_passed"):
        RunPayload.from_dict(raw)
