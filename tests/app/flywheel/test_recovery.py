"""Orphaned-run detection and re-enqueueing (app.flywheel.recovery) without a worker: a run whose
step's process is gone or whose heartbeat is stale is re-enqueued once, from that step."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from app.flywheel import runs
from app.flywheel.celery_app import create_celery
from app.flywheel.recovery import claim_step, heartbeat, is_orphaned, recover_orphaned_runs, release_step
from app.flywheel.settings import FlywheelSettings
from app.flywheel.tasks import iteration_chain


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _claimed(settings, run_id="it-1", step="finetune") -> dict:
    payload = {"run_id": run_id, "settings": settings.to_dict(), "snapshot": {"id": "ds-1"}}
    claim_step(settings.runs_dir, run_id, step, payload)
    return runs.read_run(settings.runs_dir, run_id)


def test_a_live_fresh_step_is_not_orphaned_a_dead_or_silent_one_is(tmp_path):
    settings = FlywheelSettings(data_dir=tmp_path)
    record = _claimed(settings)
    assert record["status"] == "running" and record["current"]["pid"] == os.getpid()
    assert not is_orphaned(settings.runs_dir, record)
    beat_file = settings.runs_dir / ".it-1.heartbeat"
    old = time.time() - 120
    os.utime(beat_file, (old, old))
    assert is_orphaned(settings.runs_dir, record, stale_s=60)  # alive but silent for 2 minutes
    with heartbeat(settings.runs_dir, "it-1", interval_s=0.05):
        time.sleep(0.3)
    assert not is_orphaned(settings.runs_dir, record, stale_s=60)  # the heartbeat refreshed it
    record["current"]["pid"] = _dead_pid()
    assert is_orphaned(settings.runs_dir, record)
    release_step(settings.runs_dir, "it-1")
    assert not is_orphaned(settings.runs_dir, runs.read_run(settings.runs_dir, "it-1"))


def test_an_orphaned_run_is_re_enqueued_once_from_its_step(tmp_path):
    settings = FlywheelSettings(data_dir=tmp_path)
    record = _claimed(settings)
    runs.update_run(settings.runs_dir, "it-1", current={**record["current"], "pid": _dead_pid()})
    app = create_celery(settings)
    assert recover_orphaned_runs(app, settings.runs_dir) == ["it-1"]
    assert recover_orphaned_runs(app, settings.runs_dir) == []  # claimed: not enqueued twice
    assert runs.read_run(settings.runs_dir, "it-1")["recoveries"] == 1
    with app.connection_for_read() as conn:
        queued = conn.default_channel.queue_declare("celery", passive=True).message_count
    assert queued == 1


def test_a_chain_resumes_from_a_named_step_only(tmp_path):
    app = create_celery(FlywheelSettings(data_dir=tmp_path))
    resumed = iteration_chain(app, {"run_id": "it-1"}, first_step="finetune")
    assert [t.task for t in resumed.tasks] == ["flywheel.finetune", "flywheel.evaluate",
                                               "flywheel.register", "flywheel.canary",
                                               "flywheel.promote"]
    with pytest.raises(ValueError, match="unknown flywheel step"):
        iteration_chain(app, {"run_id": "it-1"}, first_step="deploy")


def test_a_duplicate_delivery_for_a_finished_run_does_nothing(tmp_path):
    from app.flywheel import tasks

    settings = FlywheelSettings(data_dir=tmp_path)
    runs.update_run(settings.runs_dir, "it-1", status="promoted", wall_s=12.0)
    before = runs.read_run(settings.runs_dir, "it-1")
    payload = {"run_id": "it-1", "settings": settings.to_dict(), "snapshot": {"id": "ds-1"}}
    assert tasks.finetune(payload) == payload  # no training: the run is already done
    after = runs.read_run(settings.runs_dir, "it-1")
    assert after == before and not (settings.models_dir).exists()
