"""The engine as a Ray Serve deployment of N replicas behind the same `EngineClient` surface.

The FastAPI front (routes, history, the durable outbox) stays one process; each model version is
a Serve application of N `EngineReplica`s that the front reaches through a DeploymentHandle
(`client.ReplicaEngineClient`). Ray Serve places and restarts replicas; `router.py` picks the
replica for each request (prefix affinity with a load-balance fallback). Ray is an optional extra
(`pip install -e '.[distributed]'`): nothing here imports it at module load except the modules
only `--replicas` reaches.
"""
from __future__ import annotations

RAY_EXTRA_HINT = "needs Ray Serve, the `distributed` extra: pip install -e '.[distributed]'"


def ray_available() -> bool:
    """Whether `ray[serve]` can be imported (without importing it)."""
    import importlib.util

    return importlib.util.find_spec("ray") is not None
