"""`--replicas`: the engine as a Ray Serve deployment of 2 replicas behind the FastAPI front.

One Ray cluster for the module, two nodes simulated on this machine (`ray start --head` and a
second `ray start --address`, 3 CPUs each); each replica reserves 2 CPUs, so Ray must place one
on each node. The front joins it as `--ray-address` would. References: the official openai
client, and the same model run by one in-process engine (greedy text must be equal).
"""
from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

ray = pytest.importorskip("ray", reason="Ray Serve is the optional `distributed` extra "
                                        "(pip install -e '.[distributed]')")

from app.api.main import create_app
from app.core.config import Settings
from app.serving.loading import load_served_model
from app.serving.model_host import ModelHost
from app.serving.ray_replicas.deploy import ReplicaConfig, app_name_for, deploy_replicated_model
from shared import EngineConfig, SamplingParams
from tests.app.api.conftest import MODEL_DIR, MODEL_ID, ServerThread

pytestmark = pytest.mark.slow

ENGINE = {"num_kv_blocks": 512, "max_num_seqs": 32, "num_threads": 1}
STORY = ("Once upon a time, there was a little girl named Lily. She loved to play outside in the "
         "park with her friends. One day, ")
FRONT: dict = {}  # the served fixture's ModelHost and app (the swap test swaps on its loop)
KILL_BOUND_S = 30  # a request on a killed replica fails within this (Ray notices at once)
RESTART_BOUND_S = 120  # Serve replaces the replica within this on the loaded 2-core box


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"Ray head did not listen on {port}")


@pytest.fixture(scope="module")
def cluster_address(tmp_path_factory):
    """A two-node Ray cluster; `--block` ties each node's processes to its `ray start`, so
    terminating those two processes stops exactly this cluster."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "OMP_WAIT_POLICY": "PASSIVE"}
    os.environ["RAY_AUTH_MODE"] = "disabled"  # this process joins as a driver
    ray_cli = str(Path(sys.executable).with_name("ray"))
    port = _free_port()
    address = f"127.0.0.1:{port}"
    node_args = ["--num-cpus", "3", "--disable-usage-stats", "--block"]
    logs = tmp_path_factory.mktemp("ray")
    head = subprocess.Popen([ray_cli, "start", "--head", "--port", str(port),
                             "--node-ip-address", "127.0.0.1", "--include-dashboard=false",
                             "--ray-client-server-port", str(_free_port()), *node_args],
                            env=env, stdout=open(logs / "head.log", "w"),  # noqa: SIM115
                            stderr=subprocess.STDOUT)
    nodes = [head]
    try:
        _wait_for_port(port, 120)
        nodes.append(subprocess.Popen(
            [ray_cli, "start", "--address", address, "--node-ip-address", "127.0.0.1",
             *node_args], env=env, stdout=open(logs / "node.log", "w"),  # noqa: SIM115
            stderr=subprocess.STDOUT))
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
        deadline = time.monotonic() + 120
        while sum(n["Alive"] for n in ray.nodes()) < 2:
            assert time.monotonic() < deadline, "the second Ray node did not join"
            time.sleep(0.5)
        yield address
    finally:
        from ray import serve

        if ray.is_initialized():
            serve.shutdown()
            ray.shutdown()
        for node in reversed(nodes):
            node.terminate()
        for node in nodes:
            try:
                node.wait(60)
            except subprocess.TimeoutExpired:
                node.kill()
        os.environ.pop("RAY_AUTH_MODE", None)


@pytest.fixture(scope="module")
def served(cluster_address, tmp_path_factory):
    config = ReplicaConfig(2, ray_address=cluster_address, num_cpus_per_replica=2)
    model = deploy_replicated_model(MODEL_DIR, EngineConfig(**ENGINE), MODEL_ID, config)
    host = ModelHost()
    host.add(model)
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("data")), host=host)
    with ServerThread(app) as url:
        FRONT.update(host=host, app=app)
        yield model, url


@pytest.fixture(scope="module")
def client(served) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{served[1]}/v1", api_key="unused", max_retries=0,
                         timeout=120)


def _replicas_of(url: str, model_id: str) -> list[dict]:
    body = httpx.get(f"{url}/v1/replicas", timeout=30).json()
    return [r for m in body["data"] if m["model"] == model_id for r in m["replicas"]]


def _replicas(url: str) -> dict[str, dict]:
    body = httpx.get(f"{url}/v1/replicas", timeout=30).json()
    (served,) = body["data"]
    assert served["application"] == app_name_for(MODEL_ID)
    return {r["replica_id"]: r for r in served["replicas"]}


def _reference(prompt_ids: list[int], max_tokens: int) -> str:
    """The same greedy request on one engine in this process."""
    model = load_served_model(MODEL_DIR, EngineConfig(**ENGINE))

    async def run() -> str:
        async for out in model.engine.generate(prompt_ids, SamplingParams(
                max_tokens=max_tokens, temperature=0), "reference"):
            pass
        await model.engine.shutdown()
        return out.outputs[0].text

    return asyncio.run(run())


def test_replicas_are_placed_on_both_nodes(served, client):
    """Prompts with no cached prefix are spread by queue length (ties at random): within a few
    of them both replicas have answered, each reporting its own Ray node."""
    _, url = served
    for i in range(24):
        client.completions.create(model=MODEL_ID, prompt=f"{i} little bears went", max_tokens=1)
        if len(seen := _replicas(url)) == 2:
            break
    assert len(seen) == 2
    assert len({r["node_id"] for r in seen.values()}) == 2


def test_two_replicas_answer_like_one_engine(served, client):
    from app.serving.chat_template import render_prompt_ids

    model, _ = served
    messages = [{"role": "user", "content": STORY}]
    expected = _reference(render_prompt_ids(model.tokenizer, messages), 24)
    reply = client.chat.completions.create(model=MODEL_ID, messages=messages, max_tokens=24,
                                           temperature=0)
    assert reply.choices[0].message.content == expected
    stream = client.chat.completions.create(model=MODEL_ID, messages=messages, max_tokens=24,
                                            temperature=0, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == expected


def test_same_prefix_and_conversation_stay_on_one_replica(served, client):
    _, url = served
    before = _replicas(url)
    for ending in ("Lily saw a bird", "Lily found a ball", "Lily met a cat", "it rained"):
        client.completions.create(model=MODEL_ID, prompt=STORY + ending, max_tokens=4,
                                  temperature=0)
    after = _replicas(url)
    grown = {rid: r["num_requests"] - before.get(rid, {}).get("num_requests", 0)
             for rid, r in after.items()}
    assert max(grown.values()) == 4, grown  # all four on one replica
    (home,) = [rid for rid, n in grown.items() if n == 4]
    hits = after[home]["num_prefix_cache_hits"] - before.get(home, {}).get(
        "num_prefix_cache_hits", 0)
    assert hits >= 3 * 32  # requests 2-4 found the shared story's full blocks cached
    metrics = httpx.get(f"{url}/metrics", timeout=30).text
    series = f'flywheel_replica_requests_total{{model_version="{MODEL_ID}",replica="{home}"}}'
    assert f"{series} {float(after[home]['num_requests'])}" in metrics
    # A conversation's second turn extends the first turn's prompt: it follows it.
    turn = [{"role": "user", "content": "Tell me a story about a brave little fox."}]
    first = client.chat.completions.create(model=MODEL_ID, messages=turn, max_tokens=16,
                                           temperature=0)
    turn += [{"role": "assistant", "content": first.choices[0].message.content},
             {"role": "user", "content": "And then?"}]
    middle = _replicas(url)
    client.chat.completions.create(model=MODEL_ID, messages=turn, max_tokens=8, temperature=0)
    last = _replicas(url)
    first_home = max(middle, key=lambda rid: middle[rid]["last_seen_s"])
    assert last[first_home]["num_requests"] == middle[first_home]["num_requests"] + 1


def test_closing_a_stream_aborts_it_on_its_replica(served, client):
    model, _ = served
    stream = client.completions.create(model=MODEL_ID, prompt=STORY + "a dragon", max_tokens=400,
                                       temperature=0, stream=True,
                                       extra_body={"ignore_eos": True})
    next(iter(stream))
    stream.close()
    deadline = time.monotonic() + KILL_BOUND_S
    while model.engine.stats.num_running:  # the front let go of it...
        assert time.monotonic() < deadline
        time.sleep(0.1)
    # ...and the replica aborted it: the next request with that prefix reports the same
    # replica's counters (affinity), num_aborted included.
    views = model.engine.replica_views()
    aborted_before = sum(v.stats.engine.num_aborted for v in views.values())
    client.completions.create(model=MODEL_ID, prompt=STORY + "a dragon", max_tokens=2)
    views = model.engine.replica_views()
    assert sum(v.stats.engine.num_aborted for v in views.values()) >= aborted_before + 1


def _replica_actor(model, replica_id: str):
    app = app_name_for(MODEL_ID)
    return ray.get_actor(f"SERVE_REPLICA::{app}#engine#{replica_id}", namespace="serve")


def test_killed_replica_fails_in_flight_requests_with_503_and_is_replaced(served, client):
    from ray import serve

    model, url = served
    prompt = STORY + "a storm came"
    body = {"model": MODEL_ID, "prompt": prompt, "max_tokens": 440, "temperature": 0,
            "ignore_eos": True}
    plain: dict = {}

    def post() -> None:
        plain["response"] = httpx.post(f"{url}/v1/completions", json=body, timeout=120)

    stream = client.completions.create(model=MODEL_ID, prompt=prompt, max_tokens=440,
                                       temperature=0, stream=True,
                                       extra_body={"ignore_eos": True})
    chunks = iter(stream)
    next(chunks)
    thread = threading.Thread(target=post)
    thread.start()
    deadline = time.monotonic() + KILL_BOUND_S
    while len([r for r in model.engine._in_flight.values() if r]) < 2:  # both on a replica
        assert time.monotonic() < deadline, "requests did not start"
        time.sleep(0.01)
    (victim,) = {r for r in model.engine._in_flight.values() if r}  # affinity: same one
    ray.kill(_replica_actor(model, victim))
    killed_at = time.monotonic()
    with pytest.raises(openai.APIError, match="went away"):
        for _ in chunks:
            pass
    thread.join(KILL_BOUND_S)
    assert not thread.is_alive() and time.monotonic() - killed_at < KILL_BOUND_S
    response = plain["response"]
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"]["code"] == "engine_unavailable"
    # Ray Serve replaces the replica; the service answers again on two replicas.
    deadline = time.monotonic() + RESTART_BOUND_S
    while True:
        states = serve.status().applications[app_name_for(MODEL_ID)].deployments["engine"]
        if states.replica_states.get("RUNNING", 0) == 2:
            break
        assert time.monotonic() < deadline, states.replica_states
        time.sleep(0.5)
    reply = client.completions.create(model=MODEL_ID, prompt=prompt, max_tokens=4)
    assert reply.choices[0].text


def test_hot_swap_deploys_the_new_version_on_all_replicas_and_retires_the_old(served, client):
    """The ModelHost's ordinary swap: the new version (load_like, as the registry watcher loads
    it) is a new Serve application with the same number of replicas; the old one is deleted
    once drained. Runs last: it replaces the module's model."""
    import dataclasses

    from ray import serve

    from app.serving.loading import load_like

    model, url = served
    # The same replica settings but half a CPU each: the nodes' spare CPU holds the new version.
    known = model.engine_settings["replica_config"]
    template = dataclasses.replace(model, engine_settings={
        **model.engine_settings, "replica_config": {**known, "num_cpus_per_replica": 0.5}})
    before = client.completions.create(model=MODEL_ID, prompt=STORY, max_tokens=8,
                                       temperature=0)
    new = load_like(MODEL_DIR, "mv-next", template)
    assert new.engine.app_name == app_name_for("mv-next")
    loop = FRONT["app"].state.flywheel.loop
    asyncio.run_coroutine_threadsafe(FRONT["host"].swap(MODEL_ID, new), loop).result(60)
    reply = client.completions.create(model="mv-next", prompt=STORY, max_tokens=8, temperature=0)
    assert reply.choices[0].text == before.choices[0].text  # the same weights, now on mv-next
    assert _replicas_of(url, "mv-next")  # its replicas report under the new application
    deadline = time.monotonic() + RESTART_BOUND_S
    while app_name_for(MODEL_ID) in serve.status().applications:
        assert time.monotonic() < deadline, "the old version was not retired"
        time.sleep(0.5)
    states = serve.status().applications[app_name_for("mv-next")].deployments["engine"]
    assert states.replica_states.get("RUNNING", 0) == 2
