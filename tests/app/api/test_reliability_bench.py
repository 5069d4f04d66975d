"""`flywheel bench reliability --quick` on SQLite, kill and outage: a real `flywheel serve` is
killed with SIGKILL while answers wait in its outbox (the store locked), and the store is locked
for half a run; the benchmark reads the store itself afterwards. Every answer a client received
in full is there, and no request got a 5xx other than 503 or lost its connection (outside the
kill)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from app.demo.processes import REPO_ROOT


@pytest.mark.slow
def test_quick_kill_and_outage_lose_no_acknowledged_answer(tmp_path):
    out = tmp_path / "results.json"
    completed = subprocess.run(
        [sys.executable, "-m", "app.cli", "bench", "reliability", "--quick",
         "--scenarios", "kill,outage", "--out", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert out.is_file(), completed.stdout + completed.stderr
    results = {r["scenario"]: r for r in json.loads(out.read_text())}
    assert set(results) == {"kill", "outage"}
    for name, r in results.items():
        assert r["acknowledged"] > 0, f"{name}: no answer finished"
        assert r["lost"] == 0, f"{name}: {r['lost']} of {r['acknowledged']} answers lost"
        assert r["stored"] == r["acknowledged"]
        assert r["unexpected_5xx"] == [], f"{name}: {r['unexpected_5xx']}"
        assert r["kv_usage_after"] == 0.0 and r["running_after"] == 0.0
        assert r["health_failures"] == 0
    assert results["kill"]["outbox_depth_at_kill"] > 0  # the restart had answers to replay
    assert "dropped" not in results["outage"]["chat_statuses"]
    assert "dropped" not in results["outage"]["store_route_statuses"]
