"""`flywheel worker`: run the flywheel's Celery worker (optionally with the nightly beat)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer


def command(
    data_dir: Annotated[Optional[Path], typer.Option(help="Data directory (default ./data or "
                                                     "$FLYWHEEL_DATA_DIR).")] = None,
    broker: Annotated[Optional[str], typer.Option(help="Broker URL: redis://..., amqp://... "
                                                  "(default: embedded SQLite broker).")] = None,
    result_backend: Annotated[Optional[str], typer.Option(help="Result backend URL.")] = None,
    beat: Annotated[bool, typer.Option(help="Also run the nightly iteration schedule.")] = False,
    concurrency: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
) -> None:
    """Consume flywheel iterations from the broker: dataset -> fine-tune -> evaluate -> promote."""
    from app.flywheel.celery_app import create_celery
    from app.flywheel.settings import FlywheelSettings

    if data_dir is not None:
        os.environ["FLYWHEEL_DATA_DIR"] = str(data_dir)
    settings = FlywheelSettings(data_dir=data_dir, broker_url=broker, result_backend=result_backend)
    app = create_celery(settings)
    if settings.recover_orphaned_runs:
        _recover_orphaned_runs_when_ready(settings)
    argv = ["worker", f"--loglevel={loglevel}", f"--concurrency={concurrency}"]
    if beat:
        argv += ["--beat", f"--schedule={settings.data_dir / 'celerybeat-schedule'}"]
    app.worker_main(argv)


def _recover_orphaned_runs_when_ready(settings) -> None:
    """Once the worker consumes, re-enqueue iterations a dead worker left mid-step (and keep
    checking): the embedded SQLite broker cannot redeliver them (see app.flywheel.recovery)."""
    from celery.signals import worker_ready

    from app.flywheel.recovery import start_recovery_loop

    @worker_ready.connect(weak=False)
    def _start(sender=None, **_kwargs) -> None:
        start_recovery_loop(sender.app, settings.data)
