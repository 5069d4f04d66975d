"""The iteration chain through a real Celery worker: on the embedded SQLite broker, and (marked
`broker`) on real Redis and RabbitMQ servers."""
from __future__ import annotations

import pytest
from celery.contrib.testing.worker import start_worker

from app.flywheel.celery_app import create_celery
from app.flywheel.payload import RunPayload
from app.flywheel.pipeline import enqueue_iteration
from app.flywheel.runs import UNFINISHED, RunStatus, open_runs
from model.registry import BASE_VERSION_ID
from tests.utils.registry import data_registry
from tests.app.flywheel.test_steps import base_model, make_settings, seed_corrections  # noqa: F401


def _run_chain_through_worker(settings) -> RunPayload:
    app = create_celery(settings)
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        run_id, result = enqueue_iteration(app, settings)
        payload = RunPayload.from_dict(result.get(timeout=120))  # JSON through the broker
    assert payload.run_id == run_id and payload.settings == settings
    record = open_runs(settings.data).read(run_id)
    assert record["status"] == payload.status in (RunStatus.PROMOTED, RunStatus.REJECTED)
    version = data_registry(settings.data_dir, settings.database_url).get(payload.version_id)
    assert version.parent_id == BASE_VERSION_ID and version.dataset_snapshot_id == payload.snapshot.id
    return payload


def test_chain_on_the_embedded_sqlite_broker(tmp_path, base_model):  # noqa: F811
    settings = make_settings(tmp_path, base_model)
    assert settings.broker_url.startswith("sqla+sqlite:///")
    assert settings.result_backend.startswith("db+sqlite:///")
    seed_corrections(settings)
    payload = _run_chain_through_worker(settings)
    assert payload.snapshot.counts["sft"] == 3


@pytest.mark.broker
@pytest.mark.parametrize("broker_url, backend", [
    ("redis://127.0.0.1:6379/5", "redis://127.0.0.1:6379/6"),
    ("amqp://guest:guest@127.0.0.1:5672//", None),
], ids=["redis", "rabbitmq"])
def test_chain_on_real_brokers(tmp_path, base_model, broker_url, backend):  # noqa: F811
    overrides = {"broker_url": broker_url}
    if backend:
        overrides["result_backend"] = backend
    settings = make_settings(tmp_path, base_model, **overrides)
    seed_corrections(settings)
    _run_chain_through_worker(settings)


def test_nightly_task_enqueues_an_iteration_only_with_enough_feedback(tmp_path, base_model):  # noqa: F811
    import time

    settings = make_settings(tmp_path, base_model, min_new_feedback=3)
    app = create_celery(settings)
    assert app.conf.beat_schedule["flywheel-nightly"]["task"] == "flywheel.maybe_iterate"
    nightly = app.signature("flywheel.maybe_iterate", args=(settings.to_dict(),))
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        assert nightly.apply_async().get(timeout=60) == {"enqueued": False}
        seed_corrections(settings, count=3)
        started = nightly.apply_async().get(timeout=60)
        assert started["enqueued"] and started["new_feedback"] == 3
        deadline = time.monotonic() + 120
        while (open_runs(settings.data).read(started["run_id"]) or {}).get("status") in \
                {None, *UNFINISHED}:
            assert time.monotonic() < deadline, "the enqueued iteration did not finish"
            time.sleep(0.5)
    assert open_runs(settings.data).read(started["run_id"])["status"] in (RunStatus.PROMOTED,
                                                                           RunStatus.REJECTED)
