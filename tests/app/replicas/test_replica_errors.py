"""How a failed replica request reaches the routes (no cluster: Ray's own exception classes).

Only Ray's actor errors used to be mapped, so Serve's own kinds (`ReplicaUnavailableError` for a
replica removed from routing just as a request was sent to it, a plain `RayServeException` when
an actor died while Serve resolved the request) reached the routes as 500. Every way a replica
can go away must become the retryable `EngineUnavailableError` (503), while what the replica
itself raised keeps its kind.
"""
from __future__ import annotations

import pytest

from tests.app.replicas.conftest import RAY_MISSING

rex = pytest.importorskip("ray.exceptions", reason=RAY_MISSING)
sex = pytest.importorskip("ray.serve.exceptions", reason=RAY_MISSING)

from app.serving.engine_client import EngineBusyError, EngineUnavailableError  # noqa: E402
from app.serving.ray_replicas.client import _as_engine_error  # noqa: E402


@pytest.mark.parametrize("gone", [
    rex.ActorDiedError(), rex.ActorUnavailableError("unreachable", None),
    sex.ReplicaUnavailableError("r1"), sex.DeploymentUnavailableError("engine"),
    rex.NodeDiedError("node died"), sex.RequestCancelledError("r1"),
    sex.RayServeException("an upstream actor died before finishing a dependent task")],
    ids=lambda e: type(e).__name__)
def test_a_replica_gone_is_retryable(gone):
    error = _as_engine_error(gone, "r1", "flywheel-mv-1")
    assert isinstance(error, EngineUnavailableError)
    assert "r1" in str(error) and "flywheel-mv-1" in str(error)


def test_what_the_replica_raised_keeps_its_kind():
    refused = rex.RayTaskError("generate", "traceback", ValueError("prompt too long"),
                               ValueError).as_instanceof_cause()
    assert _as_engine_error(refused, "r1", "app") is refused
    assert isinstance(refused, ValueError)  # the routes answer it 400
    busy = EngineBusyError("queue full")
    assert _as_engine_error(busy, "r1", "app") is busy
    full = _as_engine_error(sex.BackPressureError(num_queued_requests=9, max_queued_requests=8),
                            None, "app")
    assert isinstance(full, EngineBusyError)  # 429 with Retry-After, as one engine's full queue
    bug = KeyError("not Ray's")
    assert _as_engine_error(bug, None, "app") is bug
