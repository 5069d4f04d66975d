"""The flywheel proof end to end on the bundled demo model: `flywheel serve` + `flywheel worker`
subprocesses; simulated users correct the held-out made-up-capitals family through the API; one
iteration triggered by `POST /v1/flywheel/iterate` teaches it (asked with phrasings the corrections
never used, measured through the server after the hot swap) without regressing the original
domain by more than 2 points."""
from __future__ import annotations

import pytest

from benchmarks.flywheel import run_proof


@pytest.mark.slow
def test_one_iteration_through_server_and_worker_teaches_the_held_out_skill(tmp_path):
    result = run_proof(tmp_path)
    assert result["corrections"] >= 20  # the demo model got the family wrong: users corrected it
    assert result["thumbs_up"] >= 1
    assert result["held_out_cases"] >= 24
    assert result["held_out_skill_before"] <= 0.1
    assert result["status"] == "promoted" and result["gate"]["passed"]
    # Measured through the server, answered by the promoted version only.
    assert result["versions_after"] == [result["new_version"]]
    assert result["new_version"] not in result["versions_before"]
    assert result["held_out_skill_after"] >= 0.8
    drop_points = 100 * (result["original_domain_before"] - result["original_domain_after"])
    assert drop_points <= 2.0
