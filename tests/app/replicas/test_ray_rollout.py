"""Canary and hot swap with `--replicas`: the registry watcher deploys each version the registry
names as its own Serve application of 2 replicas, the canary takes its share of conversations,
and a promotion or rollback leaves only the version now in production.

The registry is changed as the flywheel and the API change it (start_canary, promote, rollback);
the server follows it on its own. Two real versions of stories260K: the shared checkpoint
("mv-base") and a copy with perturbed weights ("mv-v2"). References: one in-process engine on
each directory (greedy text must be equal), and the canary share recomputed here from each
answer's conversation id (sha256, as documented for `canary_fraction`).
"""
from __future__ import annotations

import hashlib

import httpx
import pytest

from tests.app.replicas.conftest import RAY_MISSING, greedy_text, running_replicas, wait_until

ray = pytest.importorskip("ray", reason=RAY_MISSING)

from app.api.main import create_app  # noqa: E402
from app.core.config import Settings  # noqa: E402
from app.serving.model_host import ModelHost  # noqa: E402
from app.serving.ray_replicas.deploy import ReplicaConfig, deploy_replicated_model  # noqa: E402
from model.registry import BASE_VERSION_ID, VersionStatus  # noqa: E402
from model.tokenizer import Tokenizer  # noqa: E402
from shared import EngineConfig  # noqa: E402
from tests.app.api.conftest import MODEL_DIR, MODEL_ID, ServerThread  # noqa: E402
from tests.app.api.test_rollout import _perturbed_copy  # noqa: E402
from tests.utils.registry import data_registry  # noqa: E402

pytestmark = pytest.mark.slow

ENGINE = {"num_kv_blocks": 256, "max_num_seqs": 16, "num_threads": 1}
PROMPT = "Once upon a time, there was a little girl named Lily. She"
CANARY_FRACTION = 0.5


def _greedy(model_dir, prompt: str) -> str:
    """The version's greedy completion on one engine in this process."""
    prompt_ids = Tokenizer.from_dir(model_dir).encode(prompt, add_bos=True)
    return greedy_text(model_dir, prompt_ids, 12, EngineConfig(**ENGINE))


@pytest.fixture(scope="module")
def front(cluster_address, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("rollout")
    v2_dir = _perturbed_copy(data_dir / "models" / "stories-v2")
    registry = data_registry(data_dir)
    registry.register("base", MODEL_DIR, status=VersionStatus.PRODUCTION,
                      version_id=BASE_VERSION_ID)
    registry.register("v2", v2_dir, parent_id=BASE_VERSION_ID, version_id="mv-v2")
    # Half a CPU each: two versions' replicas fit on the nodes side by side during a swap.
    replicas = ReplicaConfig(2, ray_address=cluster_address, num_cpus_per_replica=0.5)
    host = ModelHost()
    host.add(deploy_replicated_model(MODEL_DIR, EngineConfig(**ENGINE), BASE_VERSION_ID,
                                     replicas))
    settings = Settings(data_dir=data_dir, registry_poll_s=0.1, canary_fraction=CANARY_FRACTION)
    app = create_app(settings, host=host, public_name=MODEL_ID)
    texts = {BASE_VERSION_ID: _greedy(MODEL_DIR, PROMPT), "mv-v2": _greedy(v2_dir, PROMPT)}
    assert texts[BASE_VERSION_ID] != texts["mv-v2"]  # the versions are told apart by their text
    with ServerThread(app) as url, httpx.Client(base_url=url, timeout=120) as client:
        yield {"client": client, "registry": registry, "texts": texts}


def _served(client: httpx.Client) -> dict[str, dict]:
    """GET /v1/replicas by version."""
    return {m["model"]: m for m in client.get("/v1/replicas").json()["data"]}


def _greedy_answer(client: httpx.Client, model: str) -> dict:
    response = client.post("/v1/completions", json={"model": model, "prompt": PROMPT,
                                                     "max_tokens": 12, "temperature": 0})
    assert response.status_code == 200, response.text
    return response.json()


def _until_every_replica_answered(client: httpx.Client, version: str) -> list[dict]:
    """Prompts with no shared prefix spread over the replicas by queue length (ties at random);
    a replica is listed once it has answered."""
    for i in range(24):
        response = client.post("/v1/completions", json={
            "model": version, "prompt": f"{i} little bears went", "max_tokens": 1})
        assert response.status_code == 200, response.text
        if len(replicas := _served(client)[version]["replicas"]) == 2:
            return replicas
    raise AssertionError(f"only {replicas} of {version} answered")


def _canary_bucket(conversation_id: str) -> float:
    digest = hashlib.sha256(conversation_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def test_a_canary_runs_on_its_own_replicas_and_takes_its_share(front):
    client, registry, texts = front["client"], front["registry"], front["texts"]
    registry.start_canary("mv-v2")
    wait_until(lambda: "mv-v2" in _served(client), "the server did not deploy the canary")
    served = _served(client)
    assert served["mv-v2"]["status"] == "canary"
    assert served[BASE_VERSION_ID]["status"] == "production"
    assert served["mv-v2"]["application"].startswith("flywheel-mv-v2-")
    assert running_replicas(served["mv-v2"]["application"]) == 2
    assert running_replicas(served[BASE_VERSION_ID]["application"]) == 2
    for version in (BASE_VERSION_ID, "mv-v2"):  # each version's weights on each of its replicas
        assert _greedy_answer(client, version)["choices"][0]["text"] == texts[version]
        replicas = _until_every_replica_answered(client, version)
        assert len({r["node_id"] for r in replicas}) == 2  # Serve spreads them over the nodes
    answered = set()
    for i in range(16):  # new conversations on the public name: the canary takes its share
        reply = client.post("/v1/chat/completions", json={
            "model": MODEL_ID, "max_tokens": 2,
            "messages": [{"role": "user", "content": f"Tale number {i}"}]}).json()
        on_canary = _canary_bucket(reply["conversation_id"]) < CANARY_FRACTION
        assert reply["model_version"] == ("mv-v2" if on_canary else BASE_VERSION_ID)
        answered.add(reply["model_version"])
    assert answered == {"mv-v2", BASE_VERSION_ID}


def test_promotion_and_rollback_swap_every_replica(front):
    """Promoting the canary keeps its replicas serving and deletes the old version's; the
    rollback loads mv-base again as a new application of 2 replicas (a hot swap)."""
    from ray import serve

    client, registry, texts = front["client"], front["registry"], front["texts"]
    for action, version, retired in ((registry.promote, "mv-v2", BASE_VERSION_ID),
                                     (registry.rollback, BASE_VERSION_ID, "mv-v2")):
        old_application = _served(client)[retired]["application"]
        action("mv-v2")
        wait_until(lambda: set(_served(client)) == {version}, f"{retired} still served")
        assert _served(client)[version]["status"] == "production"
        wait_until(lambda: old_application not in serve.status().applications,
                   f"the application of {retired} was not deleted")
        assert running_replicas(_served(client)[version]["application"]) == 2
        answer = _greedy_answer(client, MODEL_ID)
        assert answer["model_version"] == version
        assert answer["choices"][0]["text"] == texts[version]
        replicas = _until_every_replica_answered(client, version)
        assert len({r["replica_id"] for r in replicas}) == 2
