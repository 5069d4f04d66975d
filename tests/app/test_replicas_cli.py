"""`flywheel serve/up --replicas`: usage errors are one line and exit 2, with or without Ray."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.shared_data import STORIES_HF

# `sys.modules['ray'] = None` makes this interpreter see Ray as not installed.
WITHOUT_RAY = ("import sys; sys.modules['ray'] = None; from app.cli import main; "
               "sys.exit(main(sys.argv[1:]))")


def _serve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_RAY, "serve", "--model", str(STORIES_HF),
                           *args], capture_output=True, text=True, timeout=120, check=False)


def test_replicas_without_ray_names_the_extra():
    result = _serve("--replicas", "2")
    assert result.returncode == 2 and result.stdout == ""
    expected = ("flywheel: error: Invalid value for --replicas: needs Ray Serve, the "
                "`distributed` extra: pip install -e '.[distributed]'")
    assert result.stderr.strip().splitlines() == [expected]


def test_bad_replica_flags_exit_2():
    for args, param in ((["--replicas", "0"], "--replicas"),
                        (["--ray-address", "auto"], "--ray-address")):
        result = _serve(*args)
        assert result.returncode == 2, result.stderr
        assert param in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_up_checks_replicas_before_starting_anything():
    result = subprocess.run([sys.executable, "-c", WITHOUT_RAY, "up", "--replicas", "2",
                             "--no-ui", "--no-worker"], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 2 and result.stdout == ""
    assert "--replicas" in result.stderr and ".[distributed]" in result.stderr


def _flywheel(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True,
                          text=True, timeout=120, check=False)


def test_replicas_with_tensor_parallelism_is_refused_naming_both_flags(tmp_path):
    pytest.importorskip("ray", reason="without Ray, --replicas is refused for the extra first")
    for command in (["serve", "--model", str(STORIES_HF), "--data-dir", str(tmp_path)],
                    ["up", "--model", str(STORIES_HF), "--data-dir", str(tmp_path), "--no-ui",
                     "--no-worker"]):
        result = _flywheel(*command, "--replicas", "2", "--tensor-parallel-size", "2")
        assert result.returncode == 2 and result.stdout == "", (command, result.stderr)
        (line,) = result.stderr.strip().splitlines()
        assert "--replicas" in line and "--tensor-parallel-size" in line, line
    assert list(tmp_path.iterdir()) == []  # refused before the data dir (registry) was touched


def test_up_checks_tensor_parallel_size_before_starting_anything(tmp_path):
    result = _flywheel("up", "--model", str(STORIES_HF), "--data-dir", str(tmp_path), "--no-ui",
                       "--no-worker", "--tensor-parallel-size", "3")
    assert result.returncode == 2 and result.stdout == "", result.stderr
    assert "num_attention_heads=8 is not divisible" in result.stderr  # stories260K: 8 heads
