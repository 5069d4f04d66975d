"""A `flywheel worker` killed (SIGKILL, with its pool) while the fine-tune step runs loses nothing:
a new worker finishes the iteration from the interrupted step. On the embedded SQLite broker the
killed worker's message is gone (fetched = invisible for good), so the recovery is the
heartbeat/pid check of `app.flywheel.recovery`; on Redis (marked `broker`) the same path runs, and
acks_late redelivery would only find the work done. With recovery off, Redis (after its visibility
timeout) and RabbitMQ (as soon as the connection drops) redeliver the fine-tune themselves."""
from __future__ import annotations

import pytest

from app.demo.processes import kill_group, platform_env, start_worker, stop, wait_for
from app.flywheel.celery_app import create_celery
from app.flywheel.pipeline import enqueue_iteration
from app.flywheel.runs import UNFINISHED, RunStatus, open_runs
from model.registry import BASE_VERSION_ID
from tests.utils.registry import data_registry
from tests.app.flywheel.skills import LEARNING_RECIPE, teach_one_answer
from tests.app.flywheel.test_steps import base_model, make_settings, seed_corrections  # noqa: F401

# Long enough a fine-tune (a few seconds on the tiny model) to be killed in the middle of it.
SLOW_RECIPE = {"num_epochs": 40, "replay_conversations": 64, "micro_batch_size": 4}


def _killed_in_finetune_then_resumed(tmp_path, base_model, env_overrides=None,  # noqa: F811
                                     kill_in: str = "finetune", learnable: bool = False,
                                     **settings_overrides):
    """`learnable`: teach a skill the tiny model learns, so the gate passes and a canary runs."""
    settings = make_settings(tmp_path, base_model, **settings_overrides)
    if learnable:
        settings.recipe.update(LEARNING_RECIPE)
        teach_one_answer(settings)
    else:
        settings.recipe.update(SLOW_RECIPE)
        seed_corrections(settings)
    env = platform_env(settings.data_dir, str(base_model), OMP_NUM_THREADS="1",
                       **(env_overrides or {}))
    for key in ("broker_url", "result_backend"):
        env[f"FLYWHEEL_{key.upper()}"] = getattr(settings, key)
    run_id, _ = enqueue_iteration(create_celery(settings), settings)

    first_log, second_log = tmp_path / "worker-1.log", tmp_path / "worker-2.log"
    first = start_worker(env, first_log)
    try:
        in_step = wait_for(lambda: _current_step(settings, run_id) == kill_in, 120,
                           f"the {kill_in} step to start", interval_s=0.05)
    finally:
        kill_group(first)
    assert in_step
    killed = open_runs(settings.data).read(run_id)
    assert killed["status"] == RunStatus.RUNNING and kill_in not in killed["steps"]
    dataset_done_at = killed["steps"]["build_dataset"]["finished_at"]

    second = start_worker(env, second_log)
    try:
        record = wait_for(lambda: _finished(settings, run_id), 180, f"run {run_id} to finish")
    finally:
        stop(second)
    assert record["status"] in (RunStatus.PROMOTED, RunStatus.REJECTED), record
    assert record.get("recoveries", 0) == (1 if settings.recover_orphaned_runs else 0)
    assert set(record["steps"]) == {"build_dataset", "finetune", "evaluate", "register", "canary",
                                    "promote"}
    # The dataset snapshot was reused from the payload, not rebuilt; the killed step ran again.
    assert record["steps"]["build_dataset"]["finished_at"] == dataset_done_at
    resumed = second_log.read_text()
    assert "flywheel.build_dataset[" not in resumed
    assert resumed.count(f"flywheel.{kill_in}[") >= 1
    # Exactly one new registry version, child of the base.
    versions = data_registry(settings.data_dir, settings.database_url).list()
    assert sorted(v.id for v in versions) == sorted([BASE_VERSION_ID, record["steps"]["register"]["version_id"]])
    return record


def _current_step(settings, run_id: str) -> str | None:
    return ((open_runs(settings.data).read(run_id) or {}).get("current") or {}).get("step")


def _finished(settings, run_id: str) -> dict | None:
    record = open_runs(settings.data).read(run_id)
    return record if record and record["status"] not in UNFINISHED else None


def test_worker_killed_mid_finetune_on_sqlite_broker(tmp_path, base_model):  # noqa: F811
    _killed_in_finetune_then_resumed(tmp_path, base_model)


@pytest.mark.broker
def test_worker_killed_mid_finetune_on_redis_is_recovered(tmp_path, base_model):  # noqa: F811
    import redis

    redis.Redis.from_url("redis://127.0.0.1:6379/7").flushdb()
    _killed_in_finetune_then_resumed(tmp_path, base_model, broker_url="redis://127.0.0.1:6379/7",
                                     result_backend="redis://127.0.0.1:6379/8")


@pytest.mark.broker
def test_worker_killed_mid_finetune_on_redis_is_redelivered(tmp_path, base_model):  # noqa: F811
    """Recovery off: Redis alone redelivers the unacked fine-tune (acks_late + a short visibility
    timeout); the redelivered task and its chain finish the run without duplicating it."""
    import redis

    redis.Redis.from_url("redis://127.0.0.1:6379/7").flushdb()
    _killed_in_finetune_then_resumed(
        tmp_path, base_model, broker_url="redis://127.0.0.1:6379/7",
        result_backend="redis://127.0.0.1:6379/8", recover_orphaned_runs=False,
        visibility_timeout_s=5.0,
        env_overrides={"FLYWHEEL_RECOVER_ORPHANED_RUNS": "0", "FLYWHEEL_VISIBILITY_TIMEOUT_S": "5"})


@pytest.mark.broker
def test_worker_killed_mid_finetune_on_rabbitmq_is_redelivered(tmp_path, base_model):  # noqa: F811
    """Recovery off: RabbitMQ requeues the killed worker's unacked fine-tune (acks_late) as soon as
    its connection drops; the second worker finishes the run from there, without duplicating it."""
    broker_url = "amqp://guest:guest@127.0.0.1:5672//"
    create_celery(make_settings(tmp_path / "purge", base_model, broker_url=broker_url)).control.purge()
    _killed_in_finetune_then_resumed(
        tmp_path, base_model, broker_url=broker_url, recover_orphaned_runs=False,
        env_overrides={"FLYWHEEL_RECOVER_ORPHANED_RUNS": "0"})


def test_worker_killed_while_the_canary_soaks_is_recovered(tmp_path, base_model):  # noqa: F811
    """The promote step waits out the canary inside its claimed step: a worker killed meanwhile is
    recovered like any other, and the verdict still comes after the soak, once."""
    record = _killed_in_finetune_then_resumed(
        tmp_path, base_model, kill_in="promote", canary_soak_s=6.0, learnable=True)
    assert record["status"] == RunStatus.PROMOTED  # no canary feedback: the offline gate decides
    soaked_until = record["steps"]["canary"]["canary_until"]
    assert record["steps"]["promote"]["finished_at"] >= soaked_until
    assert record["steps"]["finetune"]["finished_at"] < soaked_until - 5
