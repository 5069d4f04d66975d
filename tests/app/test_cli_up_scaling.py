"""`flywheel up --tensor-parallel-size` reaches the server it starts, as `flywheel serve` takes it:
the answer's stored engine settings (what the server really ran) name the split. (`up
--replicas` is passed the same way; the refusals are in test_replicas_cli.py.)"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.app.test_cli_up import _free_port, _post, _wait_ready
from tests.shared_data import STORIES_HF

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_up_serves_with_the_tensor_parallel_size_it_was_given(tmp_path):
    port = _free_port()
    up = subprocess.Popen([sys.executable, "-m", "app.cli", "up", "--model", str(STORIES_HF),
                           "--no-ui", "--no-worker", "--no-auth", "--port", str(port),
                           "--data-dir", str(tmp_path), "--tensor-parallel-size", "2"],
                          cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert up.stdout.readline().startswith(f"API   http://127.0.0.1:{port}/v1")
        _wait_ready(port, timeout_s=180)
        url = f"http://127.0.0.1:{port}/v1"
        answer = _post(f"{url}/chat/completions", {
            "model": STORIES_HF.name, "max_tokens": 8, "temperature": 0,
            "messages": [{"role": "user", "content": "Hello!"}]})
        assert answer["choices"][0]["message"]["content"]
        deadline = time.monotonic() + 30
        while True:  # the answer reaches the store through the outbox writer
            conversation = json.load(urllib.request.urlopen(
                f"{url}/conversations/{answer['conversation_id']}", timeout=30))
            stored = [m for m in conversation["messages"] if m["role"] == "assistant"]
            if stored or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert stored[0]["engine_settings"]["tensor_parallel_size"] == 2
    finally:
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=90) == 0
