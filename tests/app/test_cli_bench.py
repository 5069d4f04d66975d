"""`flywheel bench NAME [ARGS]`: runs benchmarks/NAME with the arguments passed through; an unknown
name exits 2 with one line."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

FLYWHEEL = str(Path(sys.executable).with_name("flywheel"))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([FLYWHEEL, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_bench_runs_the_named_benchmark_with_its_own_flags():
    result = run_cli("bench", "chip-ops", "--threads", "1", "--rounds", "1",
                     "--filter", "paged_attention bf16 prefill 288")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("torch ") and "1 threads" in lines[0] and "best of 1 rounds" in lines[0]
    measured = [line for line in lines if "paged_attention bf16 prefill 288" in line]
    assert len(measured) == 1
    ratio = next(word for word in measured[0].split() if word.endswith("x") and word[:-1][0].isdigit())
    assert float(ratio[:-1]) > 0
    assert not any("decode 64 seqs" in line for line in lines)  # --filter reached the benchmark


def test_bench_rejects_an_unknown_benchmark_with_exit_code_2():
    result = run_cli("bench", "nope")
    assert result.returncode == 2
    assert result.stderr.strip() == ("flywheel: error: unknown benchmark 'nope'; choose one of: "
                                     "throughput, serving, chip-ops, flywheel, reliability, "
                                     "speculative, peers")
    assert result.stdout == ""


def test_bench_passes_the_benchmarks_exit_status_on():
    result = run_cli("bench", "chip-ops", "--no-such-flag")
    assert result.returncode == 2 and "unrecognized arguments: --no-such-flag" in result.stderr
