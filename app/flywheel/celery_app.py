"""The Celery application of the flywheel: embedded SQLite broker by default, Redis/RabbitMQ by URL.

Broker: `sqla+sqlite:///<data dir>/broker.db` (kombu's SQLAlchemy transport), results in
`db+sqlite:///<data dir>/celery-results.db`; `FLYWHEEL_BROKER_URL` / `FLYWHEEL_RESULT_BACKEND`
switch to `redis://...` or `amqp://...`. Tasks are acked late and rejected on worker loss: Redis
redelivers a killed worker's task after the visibility timeout, RabbitMQ when the connection drops.
The SQLite transport cannot (a fetched message stays invisible), so workers also re-enqueue runs
whose worker died mid-step (`app.flywheel.recovery`); steps are idempotent, so both may fire.
"""
from __future__ import annotations

from celery import Celery
from celery.schedules import crontab

from app.flywheel.settings import FlywheelSettings

# kombu's SQLAlchemy transport polls the database; it reads the interval from the transport
# class, not from broker options, so it is set here (seconds).
SQLITE_POLLING_INTERVAL_S = 0.2


def _tune_sqlalchemy_transport() -> None:
    from kombu.transport import sqlalchemy as kombu_sqlalchemy

    kombu_sqlalchemy.Transport.polling_interval = SQLITE_POLLING_INTERVAL_S


def _ensure_sqlite_dirs(*urls: str) -> None:
    from pathlib import Path

    for url in urls:
        if "sqlite:///" in url:
            Path(url.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)


def create_celery(settings: FlywheelSettings | None = None) -> Celery:
    settings = settings or FlywheelSettings()
    _tune_sqlalchemy_transport()
    _ensure_sqlite_dirs(settings.broker_url, settings.result_backend)
    app = Celery("flywheel", broker=settings.broker_url, backend=settings.result_backend,
                 include=["app.flywheel.tasks"])
    app.conf.update(
        task_serializer="json", result_serializer="json", accept_content=["json"],
        task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
        task_track_started=True, result_extended=True, timezone="UTC",
        broker_connection_retry_on_startup=True,
        beat_schedule={"flywheel-nightly": {
            "task": "flywheel.maybe_iterate", "schedule": crontab(hour=2, minute=0),
            "args": (settings.to_dict(),)}},
    )
    if settings.broker_url.startswith(("redis", "rediss")):
        # Redis redelivers unacked tasks after this; a long fine-tune must not run twice.
        # (The SQLAlchemy transport passes its options to create_engine, so only set it here.)
        # kombu sweeps for expired unacked messages every interval * throttle seconds (100 s by
        # default); one cheap sorted-set query every few seconds redelivers soon after expiry.
        sweep_s = max(1, min(10, int(settings.visibility_timeout_s / 2)))
        app.conf.broker_transport_options = {"visibility_timeout": settings.visibility_timeout_s,
                                             "unacked_restore_interval": sweep_s,
                                             "unacked_restore_throttle": 1}
    return app


def __getattr__(name: str):
    # `celery -A app.flywheel.celery_app` finds `celery_app`; built on first access so importing
    # this module has no side effects (the default data dir is only created when used).
    if name in ("celery_app", "app"):
        globals()[name] = create_celery()
        return globals()[name]
    raise AttributeError(name)
