"""Serving follows the model registry: canary share by conversation, promotion and rollback hot-swap
the engine behind the public model name without touching in-flight requests.

Two real versions of stories260K: the shared checkpoint ("mv-base") and a copy with perturbed
weights written by the model's own checkpoint writer ("mv-v2"). Each version's short greedy
continuation must match transformers' on that directory; a long stream that a swap lands in the
middle of must equal the same request run with no swap around it.
"""
from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import torch

from app.api.main import create_app
from app.core.config import Settings
from app.flywheel.settings import FlywheelSettings
from app.flywheel.steps import thumbs_up
from app.serving.model_host import ModelHost
from model.registry import BASE_VERSION_ID, VersionStatus
from tests.utils.registry import data_registry
from tests.app.api.conftest import MODEL_DIR, MODEL_ID, ServerThread, load_model

PROMPT = "Once upon a time"
LONG_TOKENS = 480  # long enough that a promotion lands while the stream is still generating
SHORT_TOKENS = 24


def _perturbed_copy(out_dir):
    from model.checkpoint_writer import save_checkpoint
    from model.loader import load_model as load_weights

    loaded = load_weights(MODEL_DIR)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in loaded.model.parameters():
            noise = torch.randn(param.shape, generator=generator, dtype=param.dtype)
            param.add_(noise * 0.3 * param.float().std().clamp_min(1e-3))
    return save_checkpoint(loaded.model, loaded.config, out_dir, tokenizer_dir=MODEL_DIR)


def _reference(model_dir, prompt_ids: list[int], num_tokens: int) -> list[int]:
    """transformers' greedy continuation that runs through EOS, as `ignore_eos` requests do."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    model.generation_config.eos_token_id = None  # keep going through EOS; no suppression
    with torch.no_grad():
        out = model.generate(torch.tensor([prompt_ids]), max_new_tokens=num_tokens,
                             do_sample=False, pad_token_id=0)
    return out[0, len(prompt_ids):].tolist()


def _continuation(tokenizer, prompt_ids: list[int], ids: list[int]) -> str:
    """The text `ids` add after the prompt (its leading space included, as the server sends it)."""
    prompt = tokenizer.decode(prompt_ids, skip_special_tokens=True)
    return tokenizer.decode(prompt_ids + ids, skip_special_tokens=True)[len(prompt):]


@pytest.fixture(scope="module")
def rollout(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("rollout")
    v2_dir = _perturbed_copy(data_dir / "models" / "stories-v2")
    registry = data_registry(data_dir)
    registry.register("base", MODEL_DIR, status=VersionStatus.PRODUCTION, version_id=BASE_VERSION_ID)
    registry.register("v2", v2_dir, parent_id="mv-base", version_id="mv-v2")
    registry.start_canary("mv-v2")
    base = load_model()
    host = ModelHost()
    host.add(base)
    settings = Settings(data_dir=data_dir, registry_poll_s=0.05, canary_fraction=0.5)
    app = create_app(settings, host=host)
    tokenizer = base.tokenizer
    prompt_ids = tokenizer.encode(PROMPT, add_bos=True)
    texts = {}
    for version, model_dir in (("mv-base", MODEL_DIR), ("mv-v2", v2_dir)):
        ids = _reference(model_dir, prompt_ids, SHORT_TOKENS)
        texts[version] = {SHORT_TOKENS: _continuation(tokenizer, prompt_ids, ids)}
    with ServerThread(app) as url:
        _wait_for(url, lambda public: public.get("canary") == "mv-v2")
        yield {"url": url, "app": app, "base": base, "prompt_ids": prompt_ids, "texts": texts,
               "settings": settings, "registry": registry}


def _public_card(url: str) -> dict:
    cards = httpx.get(f"{url}/v1/models", timeout=30).json()["data"]
    return next((c for c in cards if c["id"] == MODEL_ID), {})


def _wait_for(url: str, condition, timeout_s: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        card = _public_card(url)
        if condition(card):
            return card
        time.sleep(0.02)
    raise AssertionError(f"the server did not follow the registry: {card}")


def _chat(client: httpx.Client, conversation_id: str | None = None) -> dict:
    body = {"model": MODEL_ID, "messages": [{"role": "user", "content": "Tell me a story"}],
            "max_tokens": 2, "temperature": 0}
    if conversation_id:
        body["conversation_id"] = conversation_id
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def _complete(client: httpx.Client, prompt_ids: list[int], num_tokens: int) -> dict:
    response = client.post("/v1/completions", json={
        "model": MODEL_ID, "prompt": prompt_ids, "max_tokens": num_tokens, "temperature": 0,
        "ignore_eos": True})
    assert response.status_code == 200, response.text
    return response.json()


def test_canary_share_is_sticky_per_conversation_and_recorded(rollout):
    url, state = rollout["url"], rollout["app"].state.flywheel
    listed = {c["id"]: c for c in httpx.get(f"{url}/v1/models").json()["data"]}
    assert listed[MODEL_ID]["version"] == "mv-base" and listed[MODEL_ID]["canary"] == "mv-v2"
    assert listed["mv-base"]["status"] == VersionStatus.PRODUCTION
    assert listed["mv-v2"]["status"] == VersionStatus.CANARY

    shares = {}
    with httpx.Client(base_url=url, timeout=60) as client:
        for fraction, conversations in ((0.0, 12), (1.0, 12), (0.5, 80)):
            state.rollout.canary_fraction = fraction
            firsts = [_chat(client) for _ in range(conversations)]
            on_canary = [a["model_version"] == "mv-v2" for a in firsts]
            shares[fraction] = sum(on_canary) / conversations
            for answer in firsts[:6]:  # a conversation's next turn stays on its version
                again = _chat(client, answer["conversation_id"])
                assert again["model_version"] == answer["model_version"]
                assert again["model"] == MODEL_ID  # the name asked for; the version is apart
        canary_answer = next(a for a in firsts if a["model_version"] == "mv-v2")
        feedback = client.post("/v1/feedback", json={"message_id": canary_answer["message_id"],
                                                     "thumbs": "up"})
        assert feedback.status_code == 200, feedback.text
        state.writer.flush(timeout_s=10.0)
        stored = client.get(f"/v1/conversations/{canary_answer['conversation_id']}").json()
    assert shares[0.0] == 0.0 and shares[1.0] == 1.0
    assert 0.3 <= shares[0.5] <= 0.7, shares
    answers = [m for m in stored["messages"] if m["role"] == "assistant"]
    assert answers and {m["model_version"] for m in answers} == {"mv-v2"}
    # the flywheel's canary check counts this thumbs-up for the canary version
    flywheel = FlywheelSettings.for_data_dir(rollout["settings"].data)
    assert thumbs_up(flywheel, "mv-v2") == (1, 1)
    state.rollout.canary_fraction = 0.0


def test_promote_swaps_without_touching_in_flight_streams_and_rollback_swaps_back(rollout):
    url, base, texts = rollout["url"], rollout["base"], rollout["texts"]
    prompt_ids = rollout["prompt_ids"]
    assert texts["mv-base"][SHORT_TOKENS] != texts["mv-v2"][SHORT_TOKENS]
    rollout["app"].state.flywheel.rollout.canary_fraction = 0.0
    with httpx.Client(base_url=url, timeout=60) as client:
        before = _complete(client, prompt_ids, SHORT_TOKENS)
        # the long run with no swap around it: what a stream across a swap must reproduce
        texts["mv-base"][LONG_TOKENS] = _complete(client, prompt_ids, LONG_TOKENS)["choices"][0]["text"]
    assert before["choices"][0]["text"] == texts["mv-base"][SHORT_TOKENS]
    assert texts["mv-base"][LONG_TOKENS].startswith(texts["mv-base"][SHORT_TOKENS])
    assert before["model_version"] == "mv-base"

    async def stream_across(action: str, version_id: str, serving) -> tuple[str, set[str], int]:
        """A long greedy stream; once it is generating, `action` the version over the API."""
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            body = {"model": MODEL_ID, "prompt": prompt_ids, "max_tokens": LONG_TOKENS,
                    "temperature": 0, "ignore_eos": True, "stream": True}
            async with client.stream("POST", "/v1/completions", json=body) as response:
                lines = response.aiter_lines()
                first = await anext(lines)
                changed = await client.post(f"/v1/model-versions/{version_id}/{action}")
                assert changed.status_code == 200, changed.text
                running_at_swap = await asyncio.to_thread(
                    _running_when_swapped, url, serving, action)
                rest = [line async for line in lines if line]
        chunks = [json.loads(line[6:]) for line in [first, *rest] if line.startswith("data: {")]
        text = "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
        return text, {c["model_version"] for c in chunks}, running_at_swap

    text, versions, running = asyncio.run(stream_across("promote", "mv-v2", base))
    assert running >= 1  # the old engine was still generating the stream when the swap landed
    assert versions == {"mv-base"} and text == texts["mv-base"][LONG_TOKENS]
    with httpx.Client(base_url=url, timeout=60) as client:
        after = _complete(client, prompt_ids, SHORT_TOKENS)
        assert after["choices"][0]["text"] == texts["mv-v2"][SHORT_TOKENS]
        assert after["model_version"] == "mv-v2"
        texts["mv-v2"][LONG_TOKENS] = _complete(client, prompt_ids, LONG_TOKENS)["choices"][0]["text"]
        assert texts["mv-v2"][LONG_TOKENS].startswith(texts["mv-v2"][SHORT_TOKENS])
        chat = _chat(client)
        rollout["app"].state.flywheel.writer.flush(timeout_s=10.0)
        stored = client.get(f"/v1/conversations/{chat['conversation_id']}").json()
        assert [m["model_version"] for m in stored["messages"] if m["role"] == "assistant"] == ["mv-v2"]
        assert client.post("/v1/completions", json={"model": "mv-base", "prompt": "Hi",
                                                     "max_tokens": 2}).status_code == 404

    # rollback: the earlier production version is loaded again from its directory meanwhile
    promoted = rollout["app"].state.flywheel.host.get("mv-v2")
    text, versions, running = asyncio.run(stream_across("rollback", "mv-v2", promoted))
    assert running >= 1  # the promoted engine was still generating when the rollback landed
    assert versions == {"mv-v2"} and text == texts["mv-v2"][LONG_TOKENS]
    with httpx.Client(base_url=url, timeout=60) as client:
        statuses = {v["id"]: v["status"] for v in client.get("/v1/model-versions").json()["data"]}
        assert statuses == {"mv-base": VersionStatus.PRODUCTION, "mv-v2": VersionStatus.RETIRED}
        back = _complete(client, prompt_ids, SHORT_TOKENS)
    assert back["choices"][0]["text"] == texts["mv-base"][SHORT_TOKENS]
    assert back["model_version"] == "mv-base"
    assert base.engine.stats.num_running == 0


def _running_when_swapped(url: str, serving, action: str) -> int:
    """Requests still running on `serving`'s engine at the moment the public name moved."""
    want = "mv-v2" if action == "promote" else "mv-base"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if _public_card(url).get("version") == want:
            return serving.engine.stats.num_running
    raise AssertionError("the server did not follow the registry")


def test_canary_routing_is_a_pure_function_of_the_conversation():
    from app.serving.rollout import Rollout, canary_bucket

    keys = [f"conv_{i}" for i in range(2000)]
    share = sum(canary_bucket(k) < 0.1 for k in keys) / len(keys)
    assert 0.08 <= share <= 0.12  # about the configured fraction
    routing = Rollout("public", "mv-1", canary_id="mv-2", canary_fraction=0.1)
    assert [routing.goes_to_canary(k) for k in keys] == [routing.goes_to_canary(k) for k in keys]
    assert not Rollout("public", "mv-1", canary_id=None, canary_fraction=1.0).goes_to_canary("c")
    with pytest.raises(ValueError, match="canary_fraction"):
        Rollout("public", "mv-1", canary_fraction=1.5)
    with pytest.raises(ValueError, match="canary_fraction"):
        Settings(canary_fraction=-0.1)
