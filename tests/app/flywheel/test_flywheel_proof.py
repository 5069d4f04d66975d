"""The flywheel proof on the bundled demo model: one iteration of corrections teaches the held-out
made-up-capitals family (asked with phrasings the corrections never used) without regressing the
original domain by more than 2 points, and the new version is promoted."""
from __future__ import annotations

import pytest

from benchmarks.flywheel import run_proof


@pytest.mark.slow
def test_one_iteration_teaches_the_held_out_skill_without_regression(tmp_path):
    result = run_proof(tmp_path)
    assert result["corrections"] >= 20  # the demo model got the family wrong: users corrected it
    assert result["held_out_skill_before"] <= 0.1
    assert result["held_out_skill_after"] >= 0.8
    drop_points = 100 * (result["original_domain_before"] - result["original_domain_after"])
    assert drop_points <= 2.0
    assert result["status"] == "promoted" and result["gate"]["passed"]
