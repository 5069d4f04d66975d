"""One Ray cluster for every `--replicas` test of the session: two nodes simulated on this machine
(`ray start --head` and a second `ray start --address`, 3 CPUs each), which the test process joins
as `--ray-address` would. Starting Ray takes half a minute on this 2-core box, so the test
modules share it; each module deploys its own front and Serve applications on it.
"""
from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

RAY_MISSING = "Ray Serve is the optional `distributed` extra (pip install -e '.[distributed]')"

NODE_CPUS = 3  # per node: a replica reserving 2 CPUs leaves room for no second one beside it
RESTART_BOUND_S = 120  # Serve replaces a replica (or deploys a version) within this, loaded box


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


@pytest.fixture(scope="session")
def cluster_address(tmp_path_factory):
    """A two-node Ray cluster; `--block` ties each node's processes to its `ray start`, so
    terminating those two processes stops exactly this cluster."""
    ray = pytest.importorskip("ray", reason=RAY_MISSING)
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "OMP_WAIT_POLICY": "PASSIVE"}
    os.environ["RAY_AUTH_MODE"] = "disabled"  # this process joins as a driver
    ray_cli = str(Path(sys.executable).with_name("ray"))
    port = _free_port()
    address = f"127.0.0.1:{port}"
    node_args = ["--num-cpus", str(NODE_CPUS), "--disable-usage-stats", "--block"]
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
        # The driver joins as a process on the nodes' own address (127.0.0.1, not the host's
        # outward IP), and retries: on a loaded box the head's port listens a while before its
        # raylet has registered ("No node info found ... when trying to resolve node").
        joined_by = time.monotonic() + 120
        while True:
            try:
                ray.init(address=address, _node_ip_address="127.0.0.1", include_dashboard=False,
                         log_to_driver=False)
                break
            except (ConnectionError, RuntimeError):
                if time.monotonic() > joined_by:
                    raise
                time.sleep(1)
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


def running_replicas(app_name: str) -> int:
    """Replicas Serve reports RUNNING for the application's engine deployment (0: no such app)."""
    from ray import serve

    app = serve.status().applications.get(app_name)
    if app is None or "engine" not in app.deployments:
        return 0
    return app.deployments["engine"].replica_states.get("RUNNING", 0)


def wait_until(condition, what: str, timeout_s: float = RESTART_BOUND_S, poll_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while not (result := condition()):
        assert time.monotonic() < deadline, what
        time.sleep(poll_s)
    return result


def adapter_and_merged(root: Path) -> tuple[Path, Path]:
    """A random LoRA adapter for stories260K under `root`, and the reference: the adapter merged
    into a checkpoint (served by one in-process engine, it must answer as the adapter does)."""
    from model.checkpoint_writer import save_checkpoint
    from model.loader import load_model as load_weights
    from tests.shared_data import STORIES_HF
    from tests.utils.lora import merged_copy, write_random_adapter

    loaded = load_weights(STORIES_HF)
    weights = write_random_adapter(loaded.model, root / "alpha", rank=8, alpha=16.0, seed=1,
                                   std=0.3)
    save_checkpoint(merged_copy(loaded.model, weights), loaded.config, root / "merged",
                    tokenizer_dir=STORIES_HF)
    return root / "alpha", root / "merged"


def greedy_text(model_dir, prompt_ids: list[int], max_tokens: int = 12, engine=None) -> str:
    """The reference a replica must match: the same greedy request on one engine of `model_dir`
    in this process (shut down afterwards)."""
    from app.serving.loading import load_served_model
    from shared import EngineConfig, SamplingParams

    model = load_served_model(model_dir, engine or EngineConfig(num_kv_blocks=64))

    async def run() -> str:
        async for out in model.engine.generate(prompt_ids, SamplingParams(
                max_tokens=max_tokens, temperature=0), "reference"):
            pass
        await model.engine.shutdown()
        return out.outputs[0].text

    return asyncio.run(run())
