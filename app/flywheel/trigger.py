"""When to iterate: enough new feedback since the last trigger, or a stale unfinished iteration.

The state of the last trigger (feedback count, run id, time) is one row in the store's database
(`app.store.trigger_store`), so the beat may run on any machine, or on several at once: of the
callers that decide to trigger on the same state, exactly one claims the trigger (a
compare-and-set) and queues the run; the others see None. A `flywheel_trigger.json` left in the
data dir from before is moved into the database once. Feedback itself lives in the store and
every snapshot covers all of it, so a lost iteration loses no feedback. Workers resume a run whose
worker died mid-step within seconds (`app.flywheel.recovery`); as a last resort, a run that stays
unfinished (or never got queued) for `stale_run_s` makes the next beat trigger a fresh iteration.
"""
from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from app.flywheel.runs import UNFINISHED, RunRecords, open_runs
from app.flywheel.settings import FlywheelSettings
from app.store.trigger_store import SqlTriggerStore, TriggerState

logger = logging.getLogger(__name__)
STATE_FILE = "flywheel_trigger.json"  # where the state lived before the database
IMPORTED_SUFFIX = ".imported"
STALE_RUN_S = 6 * 3600


@dataclass(frozen=True, slots=True)
class TriggerClaim:
    new_feedback: int  # feedback items to iterate on (all of it when the last run went stale)
    previous: TriggerState  # what the claim replaced (`release_trigger` puts it back)
    claimed: TriggerState  # the state this claim stored


def claim_trigger(triggers: SqlTriggerStore, runs: RunRecords, feedback_now: int, run_id: str,
                  *, min_new_feedback: int, stale_run_s: float = STALE_RUN_S) -> TriggerClaim | None:
    """The trigger, claimed for `run_id` (which the caller then queues), or None when it is not
    time yet or another caller claimed it on the same state first."""
    seen = triggers.read()
    if _stale(runs, seen, stale_run_s):
        new_feedback = max(feedback_now, 1)  # every snapshot covers all feedback
    elif feedback_now - seen.feedback_count >= min_new_feedback:
        new_feedback = feedback_now - seen.feedback_count
    else:
        return None
    now = time.time()
    if not triggers.replace(seen, feedback_count=feedback_now, run_id=run_id, triggered_at=now):
        return None  # another beat triggered in between: its run covers this feedback
    return TriggerClaim(new_feedback, seen,
                        TriggerState(feedback_now, run_id, now, seen.rev + 1))


def release_trigger(triggers: SqlTriggerStore, claim: TriggerClaim) -> bool:
    """Undo `claim` (its run could not be queued) unless another trigger came after it."""
    previous = claim.previous
    return triggers.replace(claim.claimed, feedback_count=previous.feedback_count,
                            run_id=previous.run_id, triggered_at=previous.triggered_at)


def _stale(runs: RunRecords, state: TriggerState, stale_run_s: float) -> bool:
    if not state.run_id:
        return False
    record = runs.read(state.run_id)
    return (record is None or record["status"] in UNFINISHED) and \
        time.time() - state.triggered_at > stale_run_s


def feedback_count(settings: FlywheelSettings) -> int:
    from sqlalchemy.orm import Session

    from app.core.engines import shared_engine
    from app.store.crud_flywheel import count_feedback

    with Session(shared_engine(settings.database_url)) as session:
        return count_feedback(session)


def open_triggers(settings: FlywheelSettings) -> SqlTriggerStore:
    """The trigger state in the settings' database, after moving in an old state file."""
    from app.core.engines import shared_engine

    triggers = SqlTriggerStore(shared_engine(settings.database_url))
    import_trigger_file(triggers, settings.data_dir / STATE_FILE)
    return triggers


def claim_new_feedback(settings: FlywheelSettings, run_id: str,
                       stale_run_s: float = STALE_RUN_S) -> TriggerClaim | None:
    """`claim_trigger` on the settings' database (the beat's entry point)."""
    return claim_trigger(open_triggers(settings), open_runs(settings.data),
                         feedback_count(settings), run_id,
                         min_new_feedback=settings.min_new_feedback, stale_run_s=stale_run_s)


def import_trigger_file(triggers: SqlTriggerStore, path: Path) -> bool:
    """Move the state file of a data dir from before the database in, once: its state is stored
    unless the database already holds a trigger (the database wins), then the file is renamed to
    `flywheel_trigger.json.imported`. An unreadable file is logged and left for a person to look
    at. True when the file's state was stored."""
    if not path.is_file():
        return False
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        state = dict(feedback_count=int(raw["feedback_count"]), run_id=raw.get("run_id"),
                     triggered_at=float(raw.get("at") or 0.0))
    except (OSError, ValueError, TypeError, KeyError) as e:
        logger.warning("flywheel trigger state %s not imported: %r", path, e)
        return False
    seen = triggers.read()
    stored = seen.never_triggered and triggers.replace(seen, **state)
    with contextlib.suppress(FileNotFoundError):  # another importer renamed it first
        path.rename(path.with_name(path.name + IMPORTED_SUFFIX))
    if stored:
        logger.info("imported the flywheel trigger state from %s into the database", path)
    return stored
