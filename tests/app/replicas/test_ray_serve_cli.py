"""`flywheel serve --replicas 1 --ray-address ... --lora-modules alpha=DIR` as a user runs it: the
server joins the session's Ray cluster, deploys the replica, and serves the adapter from it.
Reference: the adapter merged into a checkpoint, on one in-process engine."""
from __future__ import annotations

import signal
import subprocess
import sys

import httpx
import pytest

from tests.app.replicas.conftest import RAY_MISSING, adapter_and_merged, greedy_text, wait_until

pytest.importorskip("ray", reason=RAY_MISSING)

from model.tokenizer import Tokenizer  # noqa: E402
from shared import EngineConfig  # noqa: E402
from tests.shared_data import STORIES_HF  # noqa: E402

pytestmark = pytest.mark.slow

PROMPT = "The little dog"


def test_serve_replicas_with_lora_modules(cluster_address, tmp_path):
    adapter_dir, merged_dir = adapter_and_merged(tmp_path)
    server = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--model", str(STORIES_HF), "--port", "0",
         "--no-auth", "--data-dir", str(tmp_path / "data"), "--num-threads", "1",
         "--replicas", "1", "--ray-address", cluster_address,
         "--lora-modules", f"alpha={adapter_dir}"], stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()
        assert url.startswith("http://"), url
        wait_until(lambda: httpx.get(f"{url}/health", timeout=30).json()["status"] == "ok",
                   "the replica or the adapter did not load")
        reply = httpx.post(f"{url}/v1/completions", timeout=60, json={
            "model": "alpha", "prompt": PROMPT, "max_tokens": 12, "temperature": 0})
        assert reply.status_code == 200, reply.text
        prompt_ids = Tokenizer.from_dir(merged_dir).encode(PROMPT, add_bos=True)
        assert reply.json()["choices"][0]["text"] == greedy_text(merged_dir, prompt_ids)
        listed = httpx.get(f"{url}/v1/replicas", timeout=30).json()["data"]
        assert {m["application"] for m in listed} != {None}  # served by the Serve application
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=120) == 0
