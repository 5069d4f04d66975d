"""The flywheel's small shared state in the database (SQLite and real PostgreSQL): the beat
trigger fires exactly once when many workers check at once, and registered lm-eval tasks keep
whole versions under concurrent adds; the files of an old data dir move in once, nothing lost."""
from __future__ import annotations

import json
import threading
import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.flywheel.runs import RunRecords, RunStatus
from app.flywheel.trigger import claim_trigger, import_trigger_file, release_trigger
from app.store.base import Base
from app.store.lm_eval_task_store import SqlLmEvalTaskStore
from app.store.run_store import SqlRunStore
from app.store.trigger_store import NEVER_TRIGGERED, SqlTriggerStore

WORKERS = 8


@pytest.fixture
def triggers(store) -> SqlTriggerStore:
    return SqlTriggerStore(store.engine)


@pytest.fixture
def runs(store) -> RunRecords:
    return RunRecords(SqlRunStore(store.engine))


def _all_at_once(fn, count: int = WORKERS) -> list:
    """`fn(i)` on `count` threads released together; results in thread order."""
    barrier, results = threading.Barrier(count), [None] * count

    def run(i: int) -> None:
        barrier.wait(30)
        results[i] = fn(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def _claim(triggers, runs, feedback_now: int, run_id: str, **kw):
    return claim_trigger(triggers, runs, feedback_now, run_id, min_new_feedback=5, **kw)


def test_the_trigger_waits_for_enough_new_feedback_then_counts_again(triggers, runs):
    assert triggers.read() == NEVER_TRIGGERED
    assert _claim(triggers, runs, 4, "it-a") is None
    claim = _claim(triggers, runs, 7, "it-a")
    assert claim.new_feedback == 7 and claim.previous == NEVER_TRIGGERED
    assert triggers.read() == claim.claimed and claim.claimed.run_id == "it-a"
    runs.update("it-a", status=RunStatus.PROMOTED)
    assert _claim(triggers, runs, 11, "it-b") is None  # 4 new since the trigger at 7
    assert _claim(triggers, runs, 12, "it-b").new_feedback == 5


def test_a_stale_run_triggers_again_and_a_finished_one_does_not(triggers, runs):
    _claim(triggers, runs, 7, "it-a")  # claimed; its worker died before queuing the run
    assert _claim(triggers, runs, 7, "it-b") is None
    assert _claim(triggers, runs, 7, "it-b", stale_run_s=3600) is None  # not stale yet
    redo = _claim(triggers, runs, 7, "it-b", stale_run_s=0.0)
    assert redo.new_feedback == 7  # every snapshot covers all feedback
    runs.update("it-b", status=RunStatus.REJECTED)
    assert _claim(triggers, runs, 7, "it-c", stale_run_s=0.0) is None


def test_the_trigger_fires_exactly_once_when_workers_check_at_once(triggers, runs):
    for round_, feedback_now in enumerate([5, 10, 15]):
        claims = _all_at_once(lambda i: _claim(triggers, runs, feedback_now, f"it-{round_}-{i}"))
        won = [c for c in claims if c is not None]
        assert len(won) == 1, claims
        assert triggers.read() == won[0].claimed and won[0].new_feedback == 5
        assert won[0].claimed.rev == round_ + 1


def test_a_stale_run_is_redone_by_exactly_one_worker(triggers, runs):
    # triggered two hours ago; the run never got queued
    assert triggers.replace(NEVER_TRIGGERED, feedback_count=7, run_id="it-lost",
                            triggered_at=time.time() - 7200)
    claims = _all_at_once(lambda i: _claim(triggers, runs, 7, f"it-{i}", stale_run_s=3600))
    assert sum(c is not None for c in claims) == 1


def test_a_released_claim_can_be_claimed_again_but_not_after_a_later_trigger(triggers, runs):
    first = _claim(triggers, runs, 7, "it-a")
    assert release_trigger(triggers, first)  # its run could not be queued
    assert triggers.read().feedback_count == 0 and triggers.read().run_id is None
    again = _claim(triggers, runs, 7, "it-b")
    assert again.new_feedback == 7
    runs.update("it-b", status=RunStatus.PROMOTED)
    later = _claim(triggers, runs, 12, "it-c")
    assert not release_trigger(triggers, again)  # a later trigger stays
    assert triggers.read() == later.claimed


def test_the_old_trigger_file_moves_in_once_and_the_database_wins(triggers, runs, tmp_path):
    path = tmp_path / "flywheel_trigger.json"
    path.write_text(json.dumps({"feedback_count": 42, "run_id": "it-old", "at": 1700000000.5}))
    assert import_trigger_file(triggers, path)
    state = triggers.read()
    assert (state.feedback_count, state.run_id, state.triggered_at) == (42, "it-old", 1700000000.5)
    assert not path.exists() and (tmp_path / "flywheel_trigger.json.imported").is_file()
    assert not import_trigger_file(triggers, path)  # gone: nothing to do
    path.write_text(json.dumps({"feedback_count": 3, "run_id": "it-older", "at": 1.0}))
    assert not import_trigger_file(triggers, path)  # a stale copy turns up: the database wins
    assert triggers.read() == state
    runs.update("it-old", status=RunStatus.PROMOTED)
    assert _claim(triggers, runs, 46, "it-new") is None  # counting goes on from the file's 42
    assert _claim(triggers, runs, 47, "it-new").new_feedback == 5


def test_an_unreadable_trigger_file_is_left_alone(triggers, tmp_path):
    path = tmp_path / "flywheel_trigger.json"
    path.write_text("{ not json")
    assert not import_trigger_file(triggers, path)
    assert path.read_text() == "{ not json" and triggers.read() == NEVER_TRIGGERED


def test_lm_eval_tasks_add_replace_remove(store):
    tasks = SqlLmEvalTaskStore(store.engine)
    files = {"task.yaml": b"task: t\n", "test.jsonl": b'{"a": 1}\n\xff\x00 not utf-8'}
    assert tasks.add("tiny", files, "sha-1")
    assert not tasks.add("tiny", {"task.yaml": b"other"}, "sha-2")  # taken, not replaced
    got = tasks.get("tiny")
    assert (got.name, got.files, got.sha256) == ("tiny", files, "sha-1")  # bytes kept exactly
    assert tasks.add("tiny", {"task.yaml": b"v2"}, "sha-2", replace=True)
    replaced = tasks.get("tiny")
    assert replaced.files == {"task.yaml": b"v2"} and replaced.sha256 == "sha-2"
    assert replaced.created_at == got.created_at <= replaced.updated_at
    tasks.add("a-first", {"task.yaml": b"x"}, "sha-a")
    assert [t.name for t in tasks.list()] == ["a-first", "tiny"]
    assert tasks.remove("tiny") and not tasks.remove("tiny")
    assert tasks.get("tiny") is None and [t.name for t in tasks.list()] == ["a-first"]


def test_one_of_concurrent_adds_of_a_new_name_wins_and_replaces_keep_whole_versions(store):
    tasks = SqlLmEvalTaskStore(store.engine)
    added = _all_at_once(lambda i: tasks.add("new", {"task.yaml": f"v{i}".encode()}, f"s{i}"))
    assert sum(added) == 1
    winner = added.index(True)
    assert tasks.get("new").files == {"task.yaml": f"v{winner}".encode()}

    def replace(i: int) -> bool:
        return tasks.add("both", {"task.yaml": f"v{i}".encode(), "d.json": f"d{i}".encode()},
                         f"s{i}", replace=True)

    assert all(_all_at_once(replace))
    final = tasks.get("both")
    i = final.sha256[1:]  # every file and the hash from one and the same writer
    assert final.files == {"task.yaml": f"v{i}".encode(), "d.json": f"d{i}".encode()}


def test_migrated_state_tables_match_the_model(store):
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    tables = ("flywheel_trigger", "lm_eval_tasks")
    assert [d for d in diff if any(t in repr(d) for t in tables)] == []
