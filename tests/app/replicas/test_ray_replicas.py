"""`--replicas`: the engine as a Ray Serve deployment of 2 replicas behind the FastAPI front.

On the session's two-node Ray cluster (conftest.py) each replica reserves 2 of a node's 3 CPUs,
so Ray must place one on each node. References: the official openai client, and the same model
run by one in-process engine (greedy text must be equal).
"""
from __future__ import annotations

import json
import threading
import time

import httpx
import openai
import pytest

from tests.app.replicas.conftest import (RAY_MISSING, RESTART_BOUND_S, adapter_and_merged,
                                         greedy_text,
                                         running_replicas, wait_until)

ray = pytest.importorskip("ray", reason=RAY_MISSING)

from app.api.main import create_app
from app.core.config import Settings
from app.serving.model_host import ModelHost
from app.serving.ray_replicas.deploy import ReplicaConfig, deploy_replicated_model
from shared import EngineConfig
from tests.app.api.conftest import MODEL_DIR, MODEL_ID, ServerThread

pytestmark = pytest.mark.slow

ENGINE = {"num_kv_blocks": 512, "max_num_seqs": 32, "num_threads": 1, "enable_lora": True,
          "max_loras": 2, "max_lora_rank": 8}
STORY = ("Once upon a time, there was a little girl named Lily. She loved to play outside in the "
         "park with her friends. One day, ")
KILL_BOUND_S = 30  # a request on a killed replica fails within this (Ray notices at once)



@pytest.fixture(scope="module")
def served(cluster_address, tmp_path_factory):
    config = ReplicaConfig(2, ray_address=cluster_address, num_cpus_per_replica=2)
    model = deploy_replicated_model(MODEL_DIR, EngineConfig(**ENGINE), MODEL_ID, config)
    host = ModelHost()
    host.add(model)
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("data")), host=host)
    with ServerThread(app) as url:
        yield model, url


@pytest.fixture(scope="module")
def client(served) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{served[1]}/v1", api_key="unused", max_retries=0,
                         timeout=120)


def _replicas(url: str) -> dict[str, dict]:
    body = httpx.get(f"{url}/v1/replicas", timeout=30).json()
    (served,) = body["data"]
    assert served["application"].startswith(f"flywheel-{MODEL_ID}-")
    return {r["replica_id"]: r for r in served["replicas"]}


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
    expected = greedy_text(MODEL_DIR, render_prompt_ids(model.tokenizer, messages), 24,
                           EngineConfig(**ENGINE))
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


def _replica_actor(app: str, replica_id: str):
    return ray.get_actor(f"SERVE_REPLICA::{app}#engine#{replica_id}", namespace="serve")


LONG = {"max_tokens": 400, "temperature": 0, "ignore_eos": True}
# Every endpoint's shape of request, each running on a replica when the replicas die:
# (name, path, body, engine requests it makes).
IN_FLIGHT = [
    ("chat", "chat/completions", {"messages": [{"role": "user", "content": STORY}]}, 1),
    ("chat stream", "chat/completions",
     {"messages": [{"role": "user", "content": STORY + "a bird"}], "stream": True}, 1),
    ("completion", "completions", {"prompt": STORY + "a storm came"}, 1),
    ("prompt list", "completions", {"prompt": [STORY + "a fox ran", STORY + "a cat sat"]}, 2),
    ("completion stream", "completions", {"prompt": STORY + "it snowed", "stream": True}, 1),
    ("prompt list stream", "completions",
     {"prompt": [STORY + "a frog sang", STORY + "a dog ran"], "stream": True}, 2),
]


def _failure_of(response: httpx.Response) -> dict:
    """The OpenAI-style error a request ended with: the body of a refused request, or for a
    stream whose headers were already sent (status 200) its in-band error event."""
    if response.headers["content-type"].startswith("application/json"):
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
        return response.json()["error"]
    assert response.status_code in (200, 503), response.text
    events = [line[len("data: "):] for line in response.text.splitlines()
              if line.startswith("data: ")]
    assert events[-1] == "[DONE]", events[-3:]
    return json.loads(events[-2])["error"]


def test_dead_replicas_fail_in_flight_requests_on_every_endpoint_with_a_retryable_503(
        served, client):
    """All requests in flight on the replicas that die end within KILL_BOUND_S with a 503
    `replica_unavailable` (in-band once a stream has started), never a 500 nor a hang; Ray
    Serve replaces the replicas and the next requests, a prompt list included, succeed."""
    model, url = served
    responses: dict[str, httpx.Response] = {}

    def post(name: str, path: str, body: dict) -> None:
        responses[name] = httpx.post(f"{url}/v1/{path}", json={"model": MODEL_ID, **LONG, **body},
                                     timeout=120)

    threads = [threading.Thread(target=post, args=(name, path, body))
               for name, path, body, _ in IN_FLIGHT]
    for thread in threads:
        thread.start()
    expected = sum(n for *_, n in IN_FLIGHT)
    wait_until(lambda: len([r for r in model.engine._in_flight.values() if r]) == expected,
               "the requests did not all start on a replica", KILL_BOUND_S, poll_s=0.01)
    victims = {r for r in model.engine._in_flight.values() if r}
    for victim in victims:
        ray.kill(_replica_actor(model.engine.app_name, victim))
    killed_at = time.monotonic()
    # Sent while Serve has not yet noticed: routed to a dead replica (503) or held until a
    # replacement is up (200); never a 500.
    late = [threading.Thread(target=post, args=(f"late {name}", path, {**body, "max_tokens": 4}))
            for name, path, body, _ in IN_FLIGHT]
    for thread in late:
        thread.start()
    for thread in threads:
        thread.join(KILL_BOUND_S)
    assert not any(t.is_alive() for t in threads) and time.monotonic() - killed_at < KILL_BOUND_S
    for name, *_ in IN_FLIGHT:
        error = _failure_of(responses[name])
        assert error["code"] == "replica_unavailable", (name, error)
        assert error["type"] == "service_unavailable_error", (name, error)
    # Ray Serve replaces what died; the service answers again on two new replicas.
    app = model.engine.app_name
    wait_until(lambda: running_replicas(app) < 2, "Serve did not notice the dead replicas")
    wait_until(lambda: running_replicas(app) == 2, "Serve did not replace the dead replicas")
    for thread in late:
        thread.join(RESTART_BOUND_S)
    for name, *_ in IN_FLIGHT:
        response = responses[f"late {name}"]
        assert response.status_code in (200, 503), (name, response.text)
        if response.status_code == 503 or '"error":' in response.text:
            assert _failure_of(response)["code"] == "replica_unavailable", name
    reply = client.completions.create(model=MODEL_ID, prompt=[STORY + "a storm", "Tom"],
                                      max_tokens=4)
    assert [c.text for c in reply.choices] and all(c.text for c in reply.choices)
    chat = client.chat.completions.create(model=MODEL_ID, max_tokens=4,
                                          messages=[{"role": "user", "content": STORY}])
    assert chat.choices[0].message.content
    assert victims.isdisjoint(_replicas(url))  # the dead are no longer listed; new ones answer


def test_a_lora_adapter_is_served_by_the_replicas(served, client, tmp_path_factory):
    """Loaded after the replicas were replaced (the test above): each replica reads the adapter
    on its first request for it. Reference: the adapter merged into a checkpoint, on one
    in-process engine."""
    _, url = served
    root = tmp_path_factory.mktemp("lora")
    adapter_dir, merged_dir = adapter_and_merged(root)
    bad = httpx.post(f"{url}/v1/load_lora_adapter", timeout=60,
                     json={"lora_name": "nope", "lora_path": str(root / "missing")})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "lora_path", bad.text
    loaded_reply = httpx.post(f"{url}/v1/load_lora_adapter", timeout=60,
                              json={"lora_name": "alpha", "lora_path": str(adapter_dir)})
    assert loaded_reply.status_code == 200, loaded_reply.text
    listed = {m["model"]: m for m in httpx.get(f"{url}/v1/replicas", timeout=30).json()["data"]}
    assert listed["alpha"]["application"] == listed[MODEL_ID]["application"]
    model, _ = served
    differs = False
    for prompt in (STORY, "The little dog", "Tim and Sue went to"):
        prompt_ids = model.tokenizer.encode(prompt, add_bos=True)
        expected = greedy_text(merged_dir, prompt_ids, 12, EngineConfig(**ENGINE))
        reply = client.completions.create(model="alpha", prompt=prompt, max_tokens=12,
                                          temperature=0)
        assert reply.choices[0].text == expected, prompt
        base = client.completions.create(model=MODEL_ID, prompt=prompt, max_tokens=12,
                                         temperature=0)
        differs |= base.choices[0].text != expected
    assert differs  # the adapter changes the answers
