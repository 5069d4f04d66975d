"""Celery tasks: thin wrappers over `steps` (tested without a broker), chained per iteration by
`app.flywheel.pipeline`.

Every task takes and returns the JSON form of a `RunPayload` (converted here, at the boundary);
options: acks_late (a crash redelivers the task), bounded retries with backoff for transient
errors (database locked, broker hiccups). Tasks are idempotent by their inputs (see `steps`), so
a redelivered task is safe.
"""
from __future__ import annotations

import logging
import sqlite3

from celery import shared_task
from sqlalchemy.exc import OperationalError

from app.flywheel.payload import RunPayload
from app.flywheel.pipeline import STEPS, Step, enqueue_iteration, task_name
from app.flywheel.runs import RunStatus, open_runs
from app.flywheel.settings import FlywheelSettings
from app.flywheel.step_claims import claim_step, heartbeat, release_step

logger = logging.getLogger(__name__)

RETRY_ON = (OperationalError, sqlite3.OperationalError, ConnectionError, TimeoutError)
TASK_OPTIONS = dict(bind=True, acks_late=True, autoretry_for=RETRY_ON,
                    retry_backoff=2, retry_backoff_max=60, retry_jitter=True, max_retries=5)


def _step_task(name: str, fn: Step):
    @shared_task(name=task_name(name), **TASK_OPTIONS)
    def task(self, raw: dict) -> dict:
        payload = RunPayload.from_dict(raw)
        records = open_runs(payload.settings.data)
        logger.info("flywheel %s (run %s, attempt %d)", name, payload.run_id,
                    self.request.retries + 1)
        if "wall_s" in (records.read(payload.run_id) or {}):
            # A duplicate delivery (recovery and broker redelivery both fired): the run is done.
            logger.info("flywheel %s: run %s already finished; nothing to do", name,
                        payload.run_id)
            return raw
        claim_step(records, payload.run_id, name, payload)
        try:
            with heartbeat(records, payload.run_id):
                result = fn(payload)
        except Exception as e:
            retrying = isinstance(e, RETRY_ON) and self.request.retries < self.max_retries
            release_step(records, payload.run_id,
                         **({} if retrying else {"status": RunStatus.FAILED, "error": repr(e)}))
            raise
        release_step(records, payload.run_id)
        return result.to_dict()
    return task


STEP_TASKS = {name: _step_task(name, fn) for name, fn in STEPS}


@shared_task(name="flywheel.maybe_iterate", **TASK_OPTIONS)
def maybe_iterate(self, settings_dict: dict) -> dict:
    """Beat entry point: iterate when >= min_new_feedback feedback items arrived since the last."""
    from app.flywheel.steps import new_run_id
    from app.flywheel.trigger import claim_new_feedback, open_triggers, release_trigger

    settings = FlywheelSettings.from_dict(settings_dict)
    run_id = new_run_id()
    claim = claim_new_feedback(settings, run_id)  # exactly one of the beats checking at once
    if claim is None:
        return {"enqueued": False}
    try:
        enqueue_iteration(self.app, settings, run_id)
    except Exception:
        release_trigger(open_triggers(settings), claim)  # the retry may claim it again
        raise
    return {"enqueued": True, "run_id": run_id, "new_feedback": claim.new_feedback}
