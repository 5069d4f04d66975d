"""`flywheel serve` and `flywheel worker` as real subprocesses sharing one data directory, the
way `flywheel up` starts them (FLYWHEEL_DATA_DIR and FLYWHEEL_BASE_MODEL set for all parts)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def platform_env(data_dir: Path, base_model: str, **extra: str) -> dict:
    return {**os.environ, "FLYWHEEL_DATA_DIR": str(Path(data_dir).resolve()),
            "FLYWHEEL_BASE_MODEL": str(Path(base_model).resolve()), **extra}


def start_serve(env: dict, model_dir: str, log_path: Path, model_name: str = "flywheel-demo",
                timeout_s: float = 120) -> tuple[subprocess.Popen, str]:
    """Start `flywheel serve` on a free port; returns (process, base URL) once its model is loaded
    (`GET /health` answers 200)."""
    import httpx

    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--model", str(model_dir), "--port", "0",
         "--model-name", model_name, "--num-threads", "1", "--no-auth"],  # one local user
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=open(log_path, "w"), text=True)
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout_s)
    if not line or not line[0].startswith("http"):
        stop(process)
        raise RuntimeError(f"flywheel serve did not start; see {log_path}")
    url = line[0].strip()

    def healthy() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"flywheel serve exited with {process.returncode}; see {log_path}")
        try:
            return httpx.get(f"{url}/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(healthy, timeout_s, "the served model to load", interval_s=0.2)
    return process, url


def start_worker(env: dict, log_path: Path) -> subprocess.Popen:
    """Start `flywheel worker` in its own process group, so that `kill_group` can kill it together
    with its pool processes, as a machine failure would."""
    return subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=open(log_path, "w"),
                            start_new_session=True)


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL a process started by `start_worker` and every process of its group."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def stop(process: subprocess.Popen, timeout_s: float = 60) -> None:
    """SIGTERM (graceful shutdown), then SIGKILL if it does not stop within `timeout_s`."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_for(check, timeout_s: float, what: str, interval_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(interval_s)
    raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")
