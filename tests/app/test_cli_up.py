"""`flywheel up` starts the API (and UI) as subprocesses, prints their URLs, and stops them all."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.shared_data import STORIES_HF

ROOT = Path(__file__).resolve().parents[2]
STORIES = STORIES_HF
FLYWHEEL = [sys.executable, "-m", "app.cli"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(port: int, timeout_s: float = 120) -> dict:
    """/health once the model has loaded (the API answers 503 while it loads)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10))
        except urllib.error.HTTPError as e:
            if e.code != 503 or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _post(url: str, body: dict, token: str | None = None) -> dict:
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    request = urllib.request.Request(url, json.dumps(body).encode(), headers)
    return json.load(urllib.request.urlopen(request, timeout=60))


def test_up_serves_the_api_behind_a_sign_in_and_stops_its_children(tmp_path):
    port = _free_port()
    preset = "preset-admin-pw-123"  # unattended installs; never printed
    up = subprocess.Popen([*FLYWHEEL, "up", "--model", str(STORIES), "--no-ui", "--no-worker",
                           "--port", str(port), "--data-dir", str(tmp_path)],
                          cwd=ROOT, stdout=subprocess.PIPE, text=True,
                          env={**os.environ, "FLYWHEEL_ADMIN_PASSWORD": preset})
    try:
        api_line = up.stdout.readline()
        assert api_line.startswith(f"API   http://127.0.0.1:{port}/v1"), api_line
        health = _wait_ready(port)
        assert health["models"] == {"mv-base": "ready"}  # the served model, registered as the base
        with pytest.raises(urllib.error.HTTPError) as refused:  # login required by default
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=30)
        assert refused.value.code == 401
        login = _post(f"http://127.0.0.1:{port}/v1/auth/login", {"username": "admin", "password": preset})
        assert login["role"] == "admin" and login["token"]
    finally:
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=60) == 0
    assert preset not in up.stdout.read()
    with pytest.raises(OSError):  # the API child is gone with its parent
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)


def test_up_without_a_model_is_a_one_line_error(tmp_path):
    result = subprocess.run([*FLYWHEEL, "up", "--model", str(tmp_path / "missing"), "--data-dir",
                             str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "config.json missing" in result.stderr


def test_create_user_refuses_duplicates_and_short_passwords(tmp_path):
    run = lambda *args, pw: subprocess.run(  # noqa: E731
        [*FLYWHEEL, "create-user", *args, "--password-stdin", "--data-dir", str(tmp_path)],
        cwd=ROOT, input=pw + "\n", capture_output=True, text=True)
    assert run("ann", "--role", "annotator", pw="long-enough-pw").returncode == 0
    duplicate = run("ann", "--role", "annotator", pw="long-enough-pw")
    assert duplicate.returncode == 2 and "already exists" in duplicate.stderr
    short = run("bob", pw="short")
    assert short.returncode == 2 and "at least 8" in short.stderr
    lookalike = run("\u0430nn", pw="long-enough-pw")  # Cyrillic a
    assert lookalike.returncode == 2 and "confused with the existing user 'ann'" in lookalike.stderr
    bad_role = run("carol", "--role", "king", pw="long-enough-pw")
    assert bad_role.returncode == 2 and "role must be one of" in bad_role.stderr


def test_up_on_the_embedded_default_runs_api_ui_and_worker(tmp_path):
    api_port, ui_port = _free_port(), _free_port()
    up = subprocess.Popen([*FLYWHEEL, "up", "--port", str(api_port), "--ui-port", str(ui_port),
                           "--data-dir", str(tmp_path), "--no-auth"],
                          cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        lines = [up.stdout.readline() for _ in range(4)]
        assert lines[1].startswith(f"UI    http://127.0.0.1:{ui_port}") and "Worker" in lines[2], lines
        assert lines[3].startswith("No sign-in (--no-auth)"), lines
        assert _wait_ready(api_port)["models"] == {"mv-base": "ready"}  # answers as "flywheel-demo"
        request = urllib.request.Request(
            f"http://127.0.0.1:{api_port}/v1/chat/completions",
            json.dumps({"model": "flywheel-demo", "max_tokens": 16, "temperature": 0,
                        "messages": [{"role": "user", "content": "Hello!"}]}).encode(),
            {"Content-Type": "application/json"})
        answer = json.load(urllib.request.urlopen(request, timeout=60))
        assert answer["choices"][0]["message"]["content"].strip()
        deadline = time.monotonic() + 60
        while True:  # Streamlit takes a moment to bind
            try:
                assert urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/", timeout=5).status == 200
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        while not (tmp_path / "broker.db").exists():  # the worker connects to the embedded broker
            assert time.monotonic() < deadline + 60, "the worker never opened the embedded broker"
            time.sleep(0.5)
    finally:
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=60) == 0
