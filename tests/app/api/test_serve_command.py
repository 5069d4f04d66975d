"""`flywheel serve` as a user runs it: prints its URL, serves, and on SIGTERM finishes the
in-flight stream, writes its history and exits 0."""
from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import httpx

from tests.app.api.conftest import MODEL_DIR, MODEL_ID


def _start(tmp_path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--model", str(MODEL_DIR), "--port", "0",
         "--data-dir", str(tmp_path), "--no-auth", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigterm_drains_the_open_stream_then_exits(tmp_path):
    process = _start(tmp_path)
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), process.stderr.read()
        with httpx.Client(base_url=url, timeout=60) as client:
            while client.get("/health").status_code != 200:
                time.sleep(0.05)
            body = {"model": MODEL_ID, "prompt": "Once", "max_tokens": 300, "temperature": 0,
                    "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}}
            with client.stream("POST", "/v1/completions", json=body) as response:
                lines = response.iter_lines()
                assert next(lines).startswith("data: {")
                threading.Thread(target=process.send_signal, args=(signal.SIGTERM,)).start()
                rest = [line for line in lines if line]
        assert rest[-1] == "data: [DONE]"
        usage = [json.loads(line[6:])["usage"] for line in rest if line.startswith("data: {")][-1]
        assert usage["completion_tokens"] == 300
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
    with sqlite3.connect(tmp_path / "flywheel.db") as db:
        assert db.execute("SELECT count(*) FROM messages WHERE role = 'assistant'").fetchone() == (1,)


def test_bad_flags_exit_2_with_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "app.cli", "serve", "--model",
                             str(tmp_path / "missing")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "missing" in result.stderr
