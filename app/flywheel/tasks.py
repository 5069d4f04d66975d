"""Celery tasks: thin wrappers over `steps` (tested without a broker), chained per iteration.

Every task takes and returns the JSON payload; options: acks_late (a crash redelivers the task),
bounded retries with backoff for transient errors (database locked, broker hiccups). Tasks are
idempotent by their inputs (see `steps`), so a redelivered task is safe.
"""
from __future__ import annotations

import logging
import sqlite3

from celery import Celery, chain, shared_task
from sqlalchemy.exc import OperationalError

from app.flywheel import runs, steps
from app.flywheel.settings import FlywheelSettings

logger = logging.getLogger(__name__)

RETRY_ON = (OperationalError, sqlite3.OperationalError, ConnectionError, TimeoutError)
TASK_OPTIONS = dict(bind=True, acks_late=True, autoretry_for=RETRY_ON,
                    retry_backoff=2, retry_backoff_max=60, retry_jitter=True, max_retries=5)


def _step_task(name: str, fn):
    @shared_task(name=f"flywheel.{name}", **TASK_OPTIONS)
    def task(self, payload: dict) -> dict:
        from app.flywheel.recovery import claim_step, heartbeat, release_step

        logger.info("flywheel %s (run %s, attempt %d)", name, payload.get("run_id"),
                    self.request.retries + 1)
        runs_dir = FlywheelSettings.from_dict(payload["settings"]).runs_dir
        if "wall_s" in (runs.read_run(runs_dir, payload["run_id"]) or {}):
            # A duplicate delivery (recovery and broker redelivery both fired): the run is done.
            logger.info("flywheel %s: run %s already finished; nothing to do", name,
                        payload["run_id"])
            return payload
        claim_step(runs_dir, payload["run_id"], name, payload)
        try:
            with heartbeat(runs_dir, payload["run_id"]):
                result = fn(payload)
        except Exception as e:
            retrying = isinstance(e, RETRY_ON) and self.request.retries < self.max_retries
            release_step(runs_dir, payload["run_id"],
                         **({} if retrying else {"status": "failed", "error": repr(e)}))
            raise
        release_step(runs_dir, payload["run_id"])
        return result
    return task


build_dataset = _step_task("build_dataset", steps.build_dataset)
finetune = _step_task("finetune", steps.finetune)
evaluate = _step_task("evaluate", steps.evaluate)
register = _step_task("register", steps.register)
canary = _step_task("canary", steps.canary)
promote = _step_task("promote", steps.promote)


STEP_NAMES = ("build_dataset", "finetune", "evaluate", "register", "canary", "promote")


def iteration_chain(app: Celery, payload: dict, first_step: str = STEP_NAMES[0]):
    """The signature of one iteration on `app`: build_dataset -> ... -> promote, or from
    `first_step` on with that step's input payload (resuming an interrupted run)."""
    if first_step not in STEP_NAMES:
        raise ValueError(f"unknown flywheel step {first_step!r}; steps: {', '.join(STEP_NAMES)}")
    first, *rest = STEP_NAMES[STEP_NAMES.index(first_step):]
    return chain(app.signature(f"flywheel.{first}", args=(payload,)),
                 *(app.signature(f"flywheel.{name}") for name in rest))


def enqueue_iteration(app: Celery, settings: FlywheelSettings, run_id: str | None = None):
    """Queue one iteration; returns (run_id, AsyncResult of the last task)."""
    payload = steps.new_payload(settings, run_id)
    return payload["run_id"], iteration_chain(app, payload).apply_async()


@shared_task(name="flywheel.maybe_iterate", **TASK_OPTIONS)
def maybe_iterate(self, settings_dict: dict) -> dict:
    """Beat entry point: iterate when >= min_new_feedback feedback items arrived since the last."""
    from app.flywheel.trigger import claim_new_feedback, feedback_count, record_trigger

    settings = FlywheelSettings.from_dict(settings_dict)
    claimed = claim_new_feedback(settings)
    if claimed is None:
        return {"enqueued": False}
    run_id, _ = enqueue_iteration(self.app, settings)
    record_trigger(settings, feedback_count(settings), run_id)
    return {"enqueued": True, "run_id": run_id, "new_feedback": claimed}
