"""LoRA adapters over HTTP, through the official openai client: `--lora-modules` adapters and ones
loaded at runtime (POST /v1/load_lora_adapter) answer as `model=<name>`, equal to the model with
the adapter merged into its weights (served beside them as its own model), while requests for the
base and for several adapters run at the same time on one engine."""
from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from app.api.main import create_app
from app.core.config import Settings
from app.serving.loading import load_served_model
from app.serving.lora_modules import parse_lora_modules, with_lora_modules
from app.serving.model_host import ModelHost
from model.checkpoint_writer import save_checkpoint
from model.loader import load_model as load_weights
from shared import EngineConfig
from tests.app.api.conftest import MODEL_DIR, MODEL_ID, ServerThread, load_model
from tests.utils.lora import merged_copy, write_random_adapter

ADMIN_KEY = "fw-test-admin-key-lora"
PROMPTS = ["Once upon a time", "The little dog", "Tim and Sue went to"]


@pytest.fixture(scope="module")
def adapter_dirs(tmp_path_factory):
    """alpha and beta adapters for the served model, and each one merged into a checkpoint."""
    root = tmp_path_factory.mktemp("lora")
    loaded = load_weights(MODEL_DIR)
    dirs = {}
    for seed, name in enumerate(("alpha", "beta"), start=1):
        weights = write_random_adapter(loaded.model, root / name, rank=8, alpha=16.0, seed=seed,
                                       std=0.3)
        save_checkpoint(merged_copy(loaded.model, weights), loaded.config, root / f"merged-{name}",
                        tokenizer_dir=MODEL_DIR)
        dirs[name] = root / name
        dirs[f"merged-{name}"] = root / f"merged-{name}"
    return dirs


@pytest.fixture(scope="module")
def server(adapter_dirs, tmp_path_factory):
    host = ModelHost()
    for name in ("merged-alpha", "merged-beta"):  # the references, each on its own engine
        host.add(load_served_model(adapter_dirs[name], EngineConfig(num_kv_blocks=512), name))
    loaders = with_lora_modules(MODEL_ID, lambda: load_model(enable_lora=True, max_loras=2,
                                                             max_lora_rank=8),
                                {"alpha": adapter_dirs["alpha"]})
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), api_keys=[ADMIN_KEY])
    with ServerThread(create_app(settings, models=loaders, host=host)) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=ADMIN_KEY, max_retries=3, timeout=120)
        client.models.retrieve("alpha")  # waits (retries on 503) until the base and alpha load
        yield url, client


def _complete(client: openai.OpenAI, model: str, prompt: str) -> str:
    reply = client.completions.create(model=model, prompt=prompt, max_tokens=16, temperature=0)
    return reply.choices[0].text


def _admin(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60)


def test_adapters_answer_by_name_like_their_merged_models_in_one_batch(server, adapter_dirs):
    url, client = server
    with _admin(url) as http:
        loaded = http.post("/v1/load_lora_adapter",
                           json={"lora_name": "beta", "lora_path": str(adapter_dirs["beta"])})
    assert loaded.status_code == 200, loaded.text
    assert loaded.json() == {"object": "lora_adapter", "id": "beta", "base_model": MODEL_ID,
                             "status": "loaded"}
    listed = {m.id for m in client.models.list().data}
    assert {MODEL_ID, "alpha", "beta", "merged-alpha", "merged-beta"} <= listed
    jobs = [(model, prompt) for prompt in PROMPTS
            for model in (MODEL_ID, "alpha", "beta", "merged-alpha", "merged-beta")]
    with ThreadPoolExecutor(len(jobs)) as pool:  # base and both adapters share engine steps
        texts = dict(zip(jobs, pool.map(lambda job: _complete(client, *job), jobs)))
    for prompt in PROMPTS:
        assert texts["alpha", prompt] == texts["merged-alpha", prompt]
        assert texts["beta", prompt] == texts["merged-beta", prompt]
    assert any(texts["alpha", p] != texts[MODEL_ID, p] for p in PROMPTS)
    assert any(texts["alpha", p] != texts["beta", p] for p in PROMPTS)


def test_chat_completions_route_by_adapter_name(server):
    _, client = server
    messages = [{"role": "user", "content": "Tell me about the cat."}]

    def chat(model: str) -> str:
        reply = client.chat.completions.create(model=model, messages=messages, max_tokens=12,
                                               temperature=0)
        assert reply.model == model
        return reply.choices[0].message.content

    assert chat("alpha") == chat("merged-alpha")


def test_load_and_unload_refuse_bad_input_with_the_param_named(server, adapter_dirs, tmp_path):
    url, client = server
    with _admin(url) as http:
        twice = http.post("/v1/load_lora_adapter",
                          json={"lora_name": "alpha", "lora_path": str(adapter_dirs["alpha"])})
        missing = http.post("/v1/load_lora_adapter",
                            json={"lora_name": "gamma", "lora_path": str(tmp_path / "nowhere")})
        unknown = http.post("/v1/unload_lora_adapter", json={"lora_name": "gamma"})
        not_adapter = http.post("/v1/unload_lora_adapter", json={"lora_name": "merged-alpha"})
    assert (twice.status_code, twice.json()["error"]["param"]) == (400, "lora_name")
    assert (missing.status_code, missing.json()["error"]["param"]) == (400, "lora_path")
    assert unknown.status_code == 404 and not_adapter.status_code == 404
    with httpx.Client(base_url=url, timeout=60) as anonymous:
        assert anonymous.post("/v1/load_lora_adapter", json={
            "lora_name": "gamma", "lora_path": str(adapter_dirs["alpha"])}).status_code == 401


def test_an_unloaded_adapter_is_no_longer_served(server, adapter_dirs):
    url, client = server
    with _admin(url) as http:
        assert http.post("/v1/load_lora_adapter", json={
            "lora_name": "delta", "lora_path": str(adapter_dirs["beta"])}).status_code == 200
        served = _complete(client, "delta", PROMPTS[0])
        assert served == _complete(client, "merged-beta", PROMPTS[0])
        gone = http.post("/v1/unload_lora_adapter", json={"lora_name": "delta"})
    assert gone.status_code == 200 and gone.json()["status"] == "unloaded"
    assert "delta" not in {m.id for m in client.models.list().data}
    with pytest.raises(openai.NotFoundError):
        _complete(client, "delta", PROMPTS[0])


def test_lora_modules_parse_name_equals_dir():
    assert parse_lora_modules(["a=/x", "b = /y/z"]) == {"a": Path("/x"), "b": Path("/y/z")}
    for bad in (["a"], ["=/x"], ["a="], ["a=/x", "a=/y"]):
        with pytest.raises(ValueError, match="--lora-modules"):
            parse_lora_modules(bad)


def test_serve_refuses_a_malformed_lora_module_with_exit_2():
    result = subprocess.run([sys.executable, "-m", "app.cli", "serve", "--model", str(MODEL_DIR),
                             "--lora-modules", "no-equals-sign"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert "--lora-modules" in result.stderr and "name=DIR" in result.stderr
