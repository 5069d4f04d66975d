"""`--replicas`, `--ray-address`, `--replica-router` of `flywheel serve`, checked before anything
loads: a missing Ray or a combination that cannot work is a usage error (exit 2)."""
from __future__ import annotations

import typer


def replica_options(replicas: int | None, ray_address: str | None, router: str,
                    tensor_parallel_size: int):
    """The ReplicaConfig to deploy with, or None for one engine in this process. LoRA adapters
    (`--lora-modules`) work with replicas: each request carries its adapter to the replica."""
    if replicas is None:
        if ray_address is not None:
            raise typer.BadParameter("needs --replicas N", param_hint="--ray-address")
        return None
    from app.serving.ray_replicas import RAY_EXTRA_HINT, ray_available

    if replicas < 1:
        raise typer.BadParameter(f"must be >= 1, got {replicas}", param_hint="--replicas")
    if not ray_available():
        raise typer.BadParameter(RAY_EXTRA_HINT, param_hint="--replicas")
    if tensor_parallel_size > 1:
        # A replica would have to launch and own its ranks' process group inside a Ray actor
        # (placement of N x TP processes); not built: one of the two scales a model today.
        raise typer.BadParameter("cannot be combined with --tensor-parallel-size > 1 (replicas of "
                                 "a tensor-parallel engine are not supported); pass only one of "
                                 "--replicas and --tensor-parallel-size", param_hint="--replicas")
    from app.serving.ray_replicas.deploy import ReplicaConfig

    try:
        return ReplicaConfig(replicas, ray_address, router=router)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--replica-router") from e
