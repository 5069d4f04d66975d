"""Swapping the served model version (promotion / rollback) drops no request."""
from __future__ import annotations

import asyncio
import json

import httpx

from app.api.main import create_app
from app.core.config import Settings
from app.serving.model_host import ModelHost
from tests.app.api.conftest import ServerThread, load_model


def test_swap_keeps_in_flight_streams_and_routes_new_requests(tmp_path):
    old, new = load_model(), load_model()
    new.id = "stories-v2"
    host = ModelHost()
    host.add(old)
    app = create_app(Settings(data_dir=tmp_path), host=host)

    async def scenario(url: str) -> tuple[list[str], dict]:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            body = {"model": old.id, "prompt": "Once", "max_tokens": 200, "temperature": 0,
                    "ignore_eos": True, "stream": True}
            async with client.stream("POST", "/v1/completions", json=body) as response:
                lines = response.aiter_lines()
                first = await anext(lines)
                await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(
                    host.load_and_swap(old.id, lambda: new), server_loop[0]))
                models = (await client.get("/v1/models")).json()
                rest = [line async for line in lines if line]
            return [first, *rest], models

    server_loop = []
    with ServerThread(app) as url:
        server_loop.append(_server_loop(app))
        lines, models = asyncio.run(scenario(url))
        with httpx.Client(base_url=url, timeout=60) as client:
            moved = client.post("/v1/completions", json={"model": new.id, "prompt": "Hi",
                                                         "max_tokens": 3})
            gone = client.post("/v1/completions", json={"model": old.id, "prompt": "Hi",
                                                        "max_tokens": 3})
    chunks = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    assert lines[-1] == "data: [DONE]" and chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert {c["model"] for c in chunks} == {old.id}  # the stream finished on the old version
    assert [m["id"] for m in models["data"]] == [new.id]
    assert moved.status_code == 200 and moved.json()["model_version"] == new.id
    assert gone.status_code == 404
    assert old.engine.stats.num_running == 0


def _server_loop(app) -> asyncio.AbstractEventLoop:
    return app.state.flywheel.loop
