"""Priorities from the API: a key's priority class becomes the engine priority of its requests,
and the engine then serves an interactive request before batch requests that were waiting
longer. Ordering is checked on the real engine (one sequence at a time, so the order of service
is the order of completion), never by timing."""
from __future__ import annotations

import asyncio
import dataclasses

import pytest
from fastapi.testclient import TestClient

from app.api.deps import Principal
from app.api.main import create_app
from app.api.priority import CLASS_PRIORITY, request_priority
from app.core.config import Settings
from app.serving.engine_client import AsyncEngineClient
from app.serving.generation import GenerationRun
from app.serving.model_host import ModelHost
from app.store.crud_users import PriorityClass
from framework.engine.async_engine import AsyncEngine
from shared import SamplingParams
from tests.app.api.conftest import MODEL_ID, load_model
from tests.utils.engine import create_engine

ADMIN_KEY = "fw-priority-admin-key"
BATCH = Principal("user_b", "b", "user", key_id="key_b", priority_class=PriorityClass.BATCH)
CHAT = Principal("user_c", "c", "user", key_id="key_c", priority_class=PriorityClass.INTERACTIVE)


def _order_of_service(chat_user: Principal) -> list[str]:
    """Four batch requests queue on an engine that runs one sequence at a time; a chat request by
    `chat_user` arrives while the first runs. Returns the requests in the order they finished."""
    engine = create_engine(max_num_seqs=1)
    client = AsyncEngineClient(AsyncEngine(engine))
    params = SamplingParams(max_tokens=24, ignore_eos=True, temperature=0)
    # The first runs long, so the chat request surely arrives while it runs, however loaded the
    # machine is (with 24 tokens it sometimes finished first and the next batch request started).
    first = dataclasses.replace(params, max_tokens=400)
    finished: list[str] = []

    async def serve(name: str, user: Principal) -> None:
        run = GenerationRun(client, "m", [72, 105], first if name == "batch-0" else params, name,
                            priority=request_priority(None, user))
        await run.run()
        finished.append(name)

    async def scenario() -> None:
        batch = [asyncio.create_task(serve(f"batch-{i}", BATCH)) for i in range(4)]
        while len(engine.scheduler.running) + len(engine.scheduler.waiting) < 4:
            await asyncio.sleep(0.001)
        assert [s.request_id for s in engine.scheduler.running] == ["batch-0"]
        await asyncio.gather(*batch, serve("chat", chat_user))
        await client.shutdown()

    asyncio.run(scenario())
    return finished


def test_an_interactive_request_is_served_before_waiting_batch_requests():
    assert _order_of_service(CHAT) == ["batch-0", "chat", "batch-1", "batch-2", "batch-3"]
    # the reference: the same chat request from a batch key waits its turn (first come)
    assert _order_of_service(BATCH) == ["batch-0", "batch-1", "batch-2", "batch-3", "chat"]


def test_a_request_may_ask_for_less_than_its_class_never_more():
    assert request_priority(None, CHAT) == CLASS_PRIORITY[PriorityClass.INTERACTIVE] == 0
    assert request_priority(None, BATCH) == CLASS_PRIORITY[PriorityClass.BATCH]
    assert request_priority(50, BATCH) == 50 and request_priority(3, CHAT) == 3
    with pytest.raises(Exception) as refused:
        request_priority(0, BATCH)
    assert refused.value.status_code == 403 and refused.value.param == "priority"


class _RecordingEngine:
    """The served engine, noting the priority each request reaches it with."""

    def __init__(self, inner) -> None:
        self.inner, self.priorities = inner, []

    def generate(self, prompt_token_ids, params, request_id, priority=0):
        self.priorities.append(priority)
        return self.inner.generate(prompt_token_ids, params, request_id, priority=priority)

    @property
    def stats(self):
        return self.inner.stats

    async def shutdown(self) -> None:
        await self.inner.shutdown()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    model = load_model()
    recording = _RecordingEngine(model.engine)
    host = ModelHost()
    host.add(dataclasses.replace(model, engine=recording))
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("data"), api_keys=[ADMIN_KEY]),
                     host=host)
    with TestClient(app) as api:
        keys = {cls: api.post("/v1/api-keys", headers=_auth(ADMIN_KEY),
                              json={"name": cls, "priority_class": cls}).json()["key"]
                for cls in ("interactive", "batch")}
        yield api, keys, recording


def _auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}),
    ("/v1/completions", {"prompt": "Once", "max_tokens": 2}),
    ("/v1/responses", {"input": "Hi", "max_output_tokens": 2}),
])
def test_the_keys_class_is_the_default_and_the_floor(served, path, body):
    api, keys, recording = served
    cases = [("interactive", {}, 200, 0), ("batch", {}, 200, 10),
             ("batch", {"priority": 40}, 200, 40), ("interactive", {"priority": 7}, 200, 7),
             ("batch", {"priority": 0}, 403, None)]
    for key_class, extra, status, engine_priority in cases:
        recording.priorities.clear()
        response = api.post(path, headers=_auth(keys[key_class]),
                            json={"model": MODEL_ID, **body, **extra})
        assert response.status_code == status, response.text
        if status == 200:
            assert recording.priorities == [engine_priority]
        else:
            assert response.json()["error"]["param"] == "priority" and recording.priorities == []
    listed = api.get("/v1/api-keys", headers=_auth(ADMIN_KEY)).json()["data"]
    classes = {k["name"]: k["priority_class"] for k in listed}
    assert classes["interactive"] == "interactive" and classes["batch"] == "batch"


def test_priority_out_of_range_is_400_naming_it(served):
    api, keys, _ = served
    for value in (-1, 10**6, "high"):
        response = api.post("/v1/chat/completions", headers=_auth(keys["interactive"]), json={
            "model": MODEL_ID, "messages": [{"role": "user", "content": "Hi"}], "priority": value})
        assert response.status_code == 400 and response.json()["error"]["param"] == "priority"
