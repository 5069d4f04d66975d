"""The flywheel proof end to end on the bundled demo model: `flywheel serve` + `flywheel worker`
subprocesses; simulated users correct the held-out made-up-capitals family through the API; one
iteration triggered by `POST /v1/flywheel/iterate` teaches it (asked with phrasings the corrections
never used, measured through the server after the hot swap) without regressing the original
domain by more than 2 points."""
from __future__ import annotations

import pytest

from benchmarks.flywheel import ORIGINAL_DOMAIN, run_proof


@pytest.mark.slow
def test_one_iteration_through_server_and_worker_teaches_the_held_out_skill(tmp_path):
    result = run_proof(tmp_path)
    (it,) = result.iterations
    assert it.corrections >= 20  # the demo model got the family wrong: users corrected it
    assert it.thumbs_up >= 1
    assert result.held_out_cases[it.skill] >= 24
    assert it.skill_before <= 0.1
    assert it.status == "promoted" and any(r.startswith("learned:") for r in it.reasons)
    # Measured through the server, answered by the promoted version only.
    assert it.after.model_versions == [it.new_version]
    assert it.new_version not in result.start.model_versions
    assert it.after.accuracy[it.skill] >= 0.8
    assert result.original_drop_points() <= 2.0
    assert result.start.accuracy[ORIGINAL_DOMAIN] > 0.5
