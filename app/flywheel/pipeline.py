"""The flywheel's pipeline: its steps in order, run in this process or chained on a broker.

build_dataset -> finetune -> evaluate -> register -> canary -> promote. This is the one place the
order lives: `iterate` runs it in process, `iteration_chain` builds the Celery chain of the tasks
`app.flywheel.tasks` registers under `task_name(step)`, and `app.flywheel.recovery` resumes an
interrupted run from a named step with it.
"""
from __future__ import annotations

from collections.abc import Callable

from celery import Celery, chain

from app.flywheel import steps
from app.flywheel.payload import RunPayload
from app.flywheel.runs import RunStatus, open_runs
from app.flywheel.settings import FlywheelSettings

Step = Callable[[RunPayload], RunPayload]

STEPS: tuple[tuple[str, Step], ...] = (
    ("build_dataset", steps.build_dataset),
    ("finetune", steps.finetune),
    ("evaluate", steps.evaluate),
    ("register", steps.register),
    ("canary", steps.canary),
    ("promote", steps.promote),
)
STEP_NAMES = tuple(name for name, _ in STEPS)


def task_name(step: str) -> str:
    return f"flywheel.{step}"


def steps_from(first_step: str) -> tuple[str, ...]:
    """The step names from `first_step` to the end; ValueError for an unknown step."""
    if first_step not in STEP_NAMES:
        raise ValueError(f"unknown flywheel step {first_step!r}; steps: {', '.join(STEP_NAMES)}")
    return STEP_NAMES[STEP_NAMES.index(first_step):]


def iterate(settings: FlywheelSettings, run_id: str | None = None) -> RunPayload:
    """One whole iteration in this process, without a broker."""
    payload = steps.new_payload(settings, run_id)
    try:
        for _, step in STEPS:
            payload = step(payload)
    except Exception as e:
        open_runs(settings.data).update(payload.run_id, status=RunStatus.FAILED, error=repr(e))
        raise
    return payload


def iteration_chain(app: Celery, payload: RunPayload, first_step: str = STEP_NAMES[0]):
    """The signature of one iteration on `app`: build_dataset -> ... -> promote, or from
    `first_step` on with that step's input payload (resuming an interrupted run)."""
    first, *rest = steps_from(first_step)
    return chain(app.signature(task_name(first), args=(payload.to_dict(),)),
                 *(app.signature(task_name(name)) for name in rest))


def enqueue_iteration(app: Celery, settings: FlywheelSettings, run_id: str | None = None):
    """Queue one iteration; returns (run_id, AsyncResult of the last task)."""
    payload = steps.new_payload(settings, run_id)
    return payload.run_id, iteration_chain(app, payload).apply_async()
