"""Start (or join) Ray, deploy a model version as a Serve application of N replicas, and wrap
it as a `ServedModel` for the front's ModelHost.

One application per served version and front (`app_name_for`): a hot swap loads the new version
as a new application on all N replicas and retires the old one once drained (the ModelHost's
ordinary swap), a canary is a second application beside production. Serve's own HTTP proxy is
disabled: the FastAPI front is the only ingress.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

from app.serving.model_host import ServedModel
from shared import EngineConfig

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class ReplicaConfig:
    num_replicas: int  # engine copies, each its own process (a Ray actor)
    ray_address: str | None = None  # a cluster to join ("auto", HOST:PORT); None: a new local one
    num_cpus_per_replica: float = 1.0  # Ray's CPU reservation for each replica
    router: str = "affinity"  # affinity (prefix cache) or pow2 (Ray's power of two choices)
    imbalanced_threshold: int = 4  # queued requests over the shortest queue before affinity yields
    max_ongoing_requests: int = 256  # per replica; more wait in the front's handle

    def __post_init__(self) -> None:
        if self.num_replicas < 1:
            raise ValueError(f"num_replicas must be >= 1, got {self.num_replicas}")
        if self.router not in ("affinity", "pow2"):
            raise ValueError(f"router must be affinity or pow2, got {self.router!r}")


def connect(config: ReplicaConfig) -> None:
    """Join the cluster at `ray_address`, or start a local Ray instance; start Serve without
    its HTTP proxy. Idempotent."""
    # Ray's driver treats SIGTERM as a crash: its failure signal handler aborts the process 3 s
    # later, cutting the server's graceful drain short (`flywheel serve` died of SIGABRT). Ray
    # reads the switch when imported (this runs before anything here imports it); unset again
    # after, so the Ray processes a local instance starts keep their crash reports.
    switch = "RAY_DISABLE_FAILURE_SIGNAL_HANDLER"
    set_here = switch not in os.environ
    os.environ.setdefault(switch, "1")
    try:
        import ray
        from ray import serve
    finally:
        if set_here:
            del os.environ[switch]

    if not ray.is_initialized():
        # Replicas run this package from the same environment: a local Ray starts its workers
        # with this interpreter; cluster nodes need flywheel installed (README, deployment).
        env = {"env_vars": {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}}
        # "local": always a new instance (None would join whatever /tmp/ray last pointed at)
        ray.init(address=config.ray_address or "local", runtime_env=env, log_to_driver=False,
                 include_dashboard=False, configure_logging=False)
    serve.start(proxy_location="Disabled")


def disconnect() -> None:
    """Leave Ray (stopping a local instance this process started) once the server has stopped
    and deleted its applications; from the main thread, rather than at interpreter exit."""
    import ray

    if ray.is_initialized():
        ray.shutdown()


def app_name_for(model_id: str) -> str:
    """`flywheel-<version>-<8 hex>`, new for every deployment: two fronts serving one version on a
    cluster, or a version deployed again while its previous application is still being deleted
    (a rollback right after a promotion), never share an application, so one's retirement never
    deletes (or waits on) the other's replicas."""
    return f"flywheel-{re.sub(r'[^A-Za-z0-9_.-]', '-', model_id)}-{uuid.uuid4().hex[:8]}"


def deploy_replicated_model(model_dir: str | Path, engine_config: EngineConfig, model_id: str,
                            config: ReplicaConfig) -> ServedModel:
    """Blocking (until every replica has loaded the model): run it in a worker thread."""
    connect(config)  # first: it sets what Ray reads when imported
    from ray import serve

    from app.serving.ray_replicas.client import ReplicaEngineClient
    from app.serving.ray_replicas.replica import EngineReplica
    from model.hf_config import load_model_config
    from model.tokenizer import Tokenizer

    model_dir = str(Path(model_dir).resolve())
    deployment = serve.deployment(
        EngineReplica, name="engine", num_replicas=config.num_replicas,
        max_ongoing_requests=config.max_ongoing_requests,
        ray_actor_options={"num_cpus": config.num_cpus_per_replica},
        request_router_config=_router_config(config, engine_config.block_size),
        health_check_period_s=1.0, health_check_timeout_s=10.0)
    app_name = app_name_for(model_id)
    handle = serve.run(deployment.bind(model_dir, engine_config, model_id), name=app_name,
                       route_prefix=None, blocking=False)
    described = handle.describe.remote().result()
    settings = {**described["engine_settings"], "replicas": config.num_replicas,
                "replica_config": dataclasses.asdict(config)}
    tokenizer = Tokenizer.from_dir(model_dir, load_model_config(model_dir).eos_token_ids)
    logger.info("%s: %d replicas up as Serve app %s", model_id, config.num_replicas, app_name)
    return ServedModel(id=model_id, engine=ReplicaEngineClient(handle, app_name),
                       tokenizer=tokenizer, max_model_len=described["max_model_len"],
                       engine_settings=settings, model_dir=model_dir)


def _router_config(config: ReplicaConfig, block_size: int):
    from ray.serve.config import RequestRouterConfig

    if config.router == "pow2":
        return RequestRouterConfig()  # Ray's default, power of two choices
    from app.serving.ray_replicas.router import PrefixAffinityRouter

    return RequestRouterConfig(
        request_router_class=PrefixAffinityRouter,
        request_router_kwargs={"block_size": block_size,
                               "imbalanced_threshold": config.imbalanced_threshold})
