"""`flywheel` sets OMP_WAIT_POLICY=PASSIVE before torch loads, unless the user chose a policy."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = ("import sys; from app.cli import main; assert 'torch' not in sys.modules; "
         "code = main(['generate', '--help']); import os, torch; "
         "print(os.environ['OMP_WAIT_POLICY'], code)")


@pytest.mark.parametrize("exported, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_cli_sets_passive_omp_wait_policy_unless_exported(exported, expected):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if exported:
        env["OMP_WAIT_POLICY"] = exported
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env,
                          timeout=120, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == f"{expected} 0"
