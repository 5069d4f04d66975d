"""Orphaned-run detection and re-enqueueing (app.flywheel.recovery) without a worker: a run whose
step's process is gone or whose heartbeat is stale is re-enqueued once, from that step."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from app.flywheel.celery_app import create_celery
from app.flywheel.payload import RunPayload, SnapshotInfo
from app.flywheel.pipeline import iteration_chain
from app.flywheel.recovery import is_orphaned, recover_orphaned_runs
from app.flywheel.runs import RunStatus, open_runs
from app.flywheel.settings import FlywheelSettings
from app.flywheel.step_claims import claim_step, heartbeat, release_step


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _payload(settings, run_id="it-1") -> RunPayload:
    """What finetune starts from: build_dataset's snapshot filled in."""
    return RunPayload(settings=settings, run_id=run_id, started_at=1700000000.0,
                      base_version_id="mv-base",
                      snapshot=SnapshotInfo(id="ds-1", version=1, content_hash="abc",
                                            counts={"sft": 3}))


def _claimed(settings, run_id="it-1", step="finetune") -> dict:
    claim_step(open_runs(settings.data), run_id, step, _payload(settings, run_id))
    return open_runs(settings.data).read(run_id)


def test_a_live_fresh_step_is_not_orphaned_a_dead_or_silent_one_is(tmp_path):
    settings = FlywheelSettings(data_dir=tmp_path)
    records = open_runs(settings.data)
    record = _claimed(settings)
    assert record["status"] == RunStatus.RUNNING and record["current"]["pid"] == os.getpid()
    assert RunPayload.from_dict(record["current"]["payload"]) == _payload(settings)
    assert not is_orphaned(record)
    old = time.time() - 120
    silent = {**record, "heartbeat_at": old, "current": {**record["current"], "started_at": old}}
    assert is_orphaned(silent, stale_s=60)  # alive but silent for 2 minutes
    claimed_at = record["heartbeat_at"]
    with heartbeat(records, "it-1", interval_s=0.05):
        time.sleep(0.3)
    beaten = records.read("it-1")
    assert beaten["heartbeat_at"] >= claimed_at + 0.2  # the heartbeat refreshed it
    assert not is_orphaned({**beaten, "current": silent["current"]}, stale_s=60)
    record["current"]["pid"] = _dead_pid()
    assert is_orphaned(record)
    release_step(records, "it-1")
    assert not is_orphaned(records.read("it-1"))


def test_an_orphaned_run_is_re_enqueued_once_from_its_step(tmp_path):
    settings = FlywheelSettings(data_dir=tmp_path)
    record = _claimed(settings)
    records = open_runs(settings.data)
    records.update("it-1", current={**record["current"], "pid": _dead_pid()})
    app = create_celery(settings)
    assert recover_orphaned_runs(app, records) == ["it-1"]
    assert recover_orphaned_runs(app, records) == []  # claimed: not enqueued twice
    assert records.read("it-1")["recoveries"] == 1
    with app.connection_for_read() as conn:
        queue = conn.SimpleQueue("celery")
        message = queue.get(timeout=5)
        queued = 1 + queue.qsize()
        queue.close()
    assert queued == 1
    assert message.headers["task"] == "flywheel.finetune"  # resumed at the interrupted step
    (raw,), _, _ = message.decode()  # ... with the payload that step started from
    assert RunPayload.from_dict(raw) == _payload(settings)


def test_a_chain_resumes_from_a_named_step_only(tmp_path):
    app = create_celery(FlywheelSettings(data_dir=tmp_path))
    settings = FlywheelSettings(data_dir=tmp_path)
    resumed = iteration_chain(app, _payload(settings), first_step="finetune")
    assert [t.task for t in resumed.tasks] == ["flywheel.finetune", "flywheel.evaluate",
                                               "flywheel.register", "flywheel.canary",
                                               "flywheel.promote"]
    with pytest.raises(ValueError, match="unknown flywheel step"):
        iteration_chain(app, _payload(settings), first_step="deploy")


def test_a_duplicate_delivery_for_a_finished_run_does_nothing(tmp_path):
    from app.flywheel import tasks

    settings = FlywheelSettings(data_dir=tmp_path)
    records = open_runs(settings.data)
    records.update("it-1", status=RunStatus.PROMOTED, wall_s=12.0)
    before = records.read("it-1")
    payload = _payload(settings).to_dict()
    assert tasks.STEP_TASKS["finetune"](payload) == payload  # no training: the run is already done
    after = records.read("it-1")
    assert after == before and not (settings.models_dir).exists()
