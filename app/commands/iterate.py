"""`flywheel iterate`: run one flywheel iteration now (in this process) or queue it for a worker."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def command(
    data_dir: Annotated[Optional[Path], typer.Option(help="Data directory (default ./data or "
                                                     "$FLYWHEEL_DATA_DIR).")] = None,
    base_model: Annotated[Optional[Path], typer.Option(help="Model to start from when the "
                                                       "registry is empty (default: the demo).")] = None,
    enqueue: Annotated[bool, typer.Option(help="Queue it on the broker for `flywheel worker` "
                                          "instead of running it here.")] = False,
    broker: Annotated[Optional[str], typer.Option(help="Broker URL (with --enqueue).")] = None,
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Override the recipe's epochs.")] = None,
) -> None:
    """Build a dataset from feedback, fine-tune, evaluate, gate and promote (or reject)."""
    import json
    import logging

    from app.flywheel.settings import FlywheelSettings

    logging.getLogger("app.flywheel").setLevel(logging.INFO)
    overrides: dict = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if base_model is not None:
        if not (base_model / "config.json").is_file():
            raise FileNotFoundError(f"{base_model}: not a model directory (no config.json)")
        overrides["base_model_dir"] = str(base_model)
    if epochs is not None:
        overrides["recipe"] = {"num_epochs": epochs}
    settings = FlywheelSettings(broker_url=broker, **overrides)
    if enqueue:
        from app.flywheel.celery_app import create_celery
        from app.flywheel.pipeline import enqueue_iteration
        from app.flywheel.runs import RunStatus

        run_id, result = enqueue_iteration(create_celery(settings), settings)
        typer.echo(json.dumps({"run_id": run_id, "status": RunStatus.QUEUED, "task_id": result.id}))
        return
    from app.flywheel.pipeline import iterate

    payload = iterate(settings).to_dict()
    summary = {key: payload.get(key) for key in ("run_id", "status", "wall_s", "version_id",
                                                  "snapshot", "gate", "metrics")}
    typer.echo(json.dumps(summary, indent=2))
