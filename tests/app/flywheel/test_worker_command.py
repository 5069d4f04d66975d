"""`flywheel worker` as a real subprocess on the embedded SQLite broker, fed by
`flywheel iterate --enqueue` (the message waits in the broker until a worker starts)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from app.flywheel.runs import UNFINISHED, RunStatus, open_runs
from tests.app.flywheel.test_steps import base_model, make_settings, seed_corrections  # noqa: F401

REPO_ROOT = __import__("pathlib").Path(__file__).resolve().parents[3]


def _cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def _wait_for_run(runs, run_id: str, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        record = runs.read(run_id)
        if record and record["status"] not in UNFINISHED:
            return record
        time.sleep(0.5)
    raise TimeoutError(f"run {run_id} did not finish: {runs.read(run_id)}")


def test_enqueued_iteration_is_run_by_the_worker_command(tmp_path, base_model):  # noqa: F811
    settings = make_settings(tmp_path, base_model)
    seed_corrections(settings)
    env = {**os.environ, "FLYWHEEL_DATA_DIR": str(settings.data_dir), "OMP_NUM_THREADS": "1"}
    queued = _cli("iterate", "--enqueue", "--base-model", str(base_model), "--epochs", "1", env=env)
    assert queued.returncode == 0, queued.stderr[-2000:]
    run_id = json.loads(queued.stdout)["run_id"]
    assert open_runs(settings.data).read(run_id)["status"] == RunStatus.QUEUED  # nothing runs it yet
    worker = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], cwd=REPO_ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=open(tmp_path / "worker.log", "w"))
    try:
        record = _wait_for_run(open_runs(settings.data), run_id, 150)
    finally:
        worker.send_signal(signal.SIGTERM)  # warm shutdown
        worker.wait(timeout=60)
    assert record["status"] in (RunStatus.PROMOTED, RunStatus.REJECTED), record
    assert set(record["steps"]) == {"build_dataset", "finetune", "evaluate", "register", "canary",
                                    "promote"}
