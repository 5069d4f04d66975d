"""Real servers for UI tests: `flywheel serve` on the tiny stories260K model and `flywheel ui`,
each as a subprocess on a free port, with users created through the admin API key."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.shared_data import STORIES_HF

REPO_ROOT = Path(__file__).resolve().parents[3]
TINY_MODEL = STORIES_HF
ADMIN_KEY = "sk-ui-tests-admin-0123456789"
PASSWORD = "correct horse battery"
USERS = {"alice": "user", "ann1": "annotator", "ann2": "annotator", "boss": "admin"}


@dataclass(frozen=True, slots=True)
class LiveApi:
    url: str
    admin_key: str
    model: str
    data_dir: Path

    def token_for(self, username: str) -> str:
        response = httpx.post(f"{self.url}/v1/auth/login", json={"username": username, "password": PASSWORD})
        response.raise_for_status()
        return response.json()["token"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_until(check, timeout_s: float, what: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if check():
                return
        time.sleep(0.2)
    raise TimeoutError(f"{what} not ready after {timeout_s}s")


@contextlib.contextmanager
def live_api(data_dir: Path, require_key: bool = True, first_run: bool = False) -> Iterator[LiveApi]:
    """`flywheel serve` with the admin API key and USERS created (`require_key`), open to anyone
    (--no-auth), or as a new install (`first_run`: sign-in required, no account, no key);
    yields once the model answers."""
    port = free_port()
    auth = ["--api-key", ADMIN_KEY] if require_key and not first_run else [] if first_run else ["--no-auth"]
    args = [sys.executable, "-m", "app.cli", "serve", "--model", str(TINY_MODEL.resolve()), "--port", str(port),
            "--data-dir", str(data_dir), "--num-threads", "1", *auth]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=open(data_dir / "serve.log", "w"))
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    try:
        try:
            _wait_until(lambda: httpx.get(f"{url}/health").status_code == 200, 180, "flywheel serve", process)
        except (RuntimeError, TimeoutError) as e:
            log_tail = (data_dir / "serve.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{e}; server log ends with:\n{log_tail}") from e
        model = "" if first_run else httpx.get(f"{url}/v1/models", headers=headers).json()["data"][0]["id"]
        if not first_run:
            for username, role in USERS.items():
                httpx.post(f"{url}/v1/users", headers=headers,
                           json={"username": username, "password": PASSWORD, "role": role}).raise_for_status()
        yield LiveApi(url=url, admin_key=ADMIN_KEY, model=model, data_dir=data_dir)
    finally:
        _stop(process)


@contextlib.contextmanager
def live_ui(api_url: str) -> Iterator[str]:
    """`flywheel ui` pointed at `api_url`; yields the UI's URL once Streamlit answers."""
    port = free_port()
    args = [sys.executable, "-m", "app.cli", "ui", "--api-url", api_url, "--port", str(port)]
    process = subprocess.Popen(args, cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until(lambda: httpx.get(f"{url}/_stcore/health").status_code == 200, 60, "flywheel ui", process)
        yield url
    finally:
        _stop(process)
