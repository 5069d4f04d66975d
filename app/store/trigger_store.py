"""The flywheel beat trigger's state in the database: `SqlTriggerStore`.

One row says when the flywheel last triggered an iteration (the feedback count then, the run it
queued, the time). The beat may run on several machines, or fire twice on one; a trigger must
still queue one iteration. So the only write is a compare-and-set on `rev`: of the callers that
read the same state and decide to trigger, exactly one write matches the row (PostgreSQL re-checks
the WHERE clause of a waiting UPDATE once the first commits; SQLite runs writes one at a time),
and the others see False. The first trigger inserts the row; a concurrent first insert fails on
the primary key and counts as a lost compare-and-set. When to trigger is the flywheel's business
(app/flywheel/trigger.py); this module only keeps the state.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.store.flywheel_state_models import FlywheelTriggerRow

TRIGGER_ID = "flywheel"  # the one row (a deployment runs one flywheel per database)


@dataclass(frozen=True, slots=True)
class TriggerState:
    feedback_count: int  # feedback items in the store at the last trigger
    run_id: str | None  # the run that trigger queued
    triggered_at: float  # epoch seconds; 0.0 before the first trigger
    rev: int  # 0 before the first trigger; every trigger adds one

    @property
    def never_triggered(self) -> bool:
        return self.rev == 0


NEVER_TRIGGERED = TriggerState(feedback_count=0, run_id=None, triggered_at=0.0, rev=0)


class SqlTriggerStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def read(self) -> TriggerState:
        with self.engine.connect() as conn:
            row = conn.execute(select(FlywheelTriggerRow)
                               .where(FlywheelTriggerRow.id == TRIGGER_ID)).first()
        if row is None:
            return NEVER_TRIGGERED
        return TriggerState(row.feedback_count, row.run_id, row.triggered_at, row.rev)

    def replace(self, seen: TriggerState, *, feedback_count: int, run_id: str | None,
                triggered_at: float) -> bool:
        """Store a new trigger if the stored state is still `seen` (read before deciding).
        True for exactly one of several callers that saw the same state."""
        values = dict(feedback_count=feedback_count, run_id=run_id, triggered_at=triggered_at,
                      rev=seen.rev + 1)
        try:
            with self.engine.begin() as conn:
                if seen.never_triggered:
                    conn.execute(insert(FlywheelTriggerRow).values(id=TRIGGER_ID, **values))
                    return True
                result = conn.execute(update(FlywheelTriggerRow)
                                      .where(FlywheelTriggerRow.id == TRIGGER_ID,
                                             FlywheelTriggerRow.rev == seen.rev)
                                      .values(**values))
                return result.rowcount == 1
        except IntegrityError:
            return False  # another caller inserted the first trigger
