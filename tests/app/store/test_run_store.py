"""Flywheel run records in the database (SQLite and real PostgreSQL): what a record holds after a
run's updates, step entries from concurrent writers (threads, processes) all kept, exactly one
recoverer per interrupted step, and the JSON records of an old data dir moved in once."""
from __future__ import annotations

import json
import multiprocessing
import threading
import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.core.data_dir import DataDir
from app.flywheel.runs import UNFINISHED, RunRecords, RunStatus, open_runs
from app.store import run_store
from app.store.base import Base
from app.store.run_store import SqlRunStore, import_run_files


@pytest.fixture
def records(store) -> RunRecords:
    return RunRecords(SqlRunStore(store.engine))


def _timeless(record: dict) -> dict:
    return {k: v for k, v in record.items()
            if k not in ("created_at", "updated_at", "heartbeat_at")}


def test_a_run_record_through_an_iteration(records):
    t0 = time.time()
    created = records.update("it-1", status=RunStatus.QUEUED)
    assert _timeless(created) == {"id": "it-1", "status": "queued", "steps": {}}
    assert t0 <= created["created_at"] == created["updated_at"] <= time.time()
    records.update("it-1", status=RunStatus.RUNNING, current={"step": "finetune", "pid": 7})
    records.update("it-1", steps={"build_dataset": {"finished_at": 1.5, "path": "/a"}})
    records.update("it-1", steps={"finetune": {"finished_at": 2.5}}, current=None,
                   note="anything else a step records")
    finished = records.update("it-1", status="promoted", wall_s=12.5, error=ValueError("x"))
    expected = {"id": "it-1", "status": "promoted", "wall_s": 12.5, "error": "x",
                "note": "anything else a step records",
                "steps": {"build_dataset": {"finished_at": 1.5, "path": "/a"},
                          "finetune": {"finished_at": 2.5}}}
    assert _timeless(finished) == expected
    read = records.read("it-1")
    assert read == finished  # what a merge returns is what a later read returns
    assert read["created_at"] == created["created_at"] < read["updated_at"]
    assert read["status"] == RunStatus.PROMOTED and records.read("it-2") is None


def test_runs_list_newest_first_and_by_status(records):
    for run_id, status in [("a", "promoted"), ("b", "running"), ("c", "queued")]:
        records.update(run_id, status=status)
        time.sleep(0.01)
    assert [r["id"] for r in records.list()] == ["c", "b", "a"]
    assert [r["id"] for r in records.list(statuses=UNFINISHED)] == ["c", "b"]


def test_bad_status_or_run_id_is_refused(records):
    with pytest.raises(ValueError, match="bogus"):
        records.update("it-1", status="bogus")
    with pytest.raises(ValueError, match="bad run id"):
        records.update("", status="queued")
    assert records.list() == []


def test_a_stale_merge_is_redone_and_a_locked_row_waits(records, store):
    """Writer A reads the run, then pauses; writer B merges another step meanwhile. PostgreSQL:
    B waits for A's row lock. SQLite: B commits, A's write matches no row and A merges again on
    the fresh row. Either way both step entries are kept."""
    records.update("it-1", steps={"build_dataset": {}})
    locked = run_store._locked
    a_read, go, b_done = threading.Event(), threading.Event(), threading.Event()
    reads_by_a = []

    def pausing_read(conn, run_id):
        row = locked(conn, run_id)
        if threading.current_thread().name == "A":
            reads_by_a.append(row.rev)
            if len(reads_by_a) == 1:
                a_read.set()
                assert go.wait(30)
        return row

    def b() -> None:
        records.update("it-1", steps={"evaluate": {"by": "B"}})
        b_done.set()

    run_store._locked = pausing_read
    try:
        a = threading.Thread(target=records.update, name="A", args=("it-1",),
                             kwargs={"steps": {"finetune": {"by": "A"}}})
        a.start()
        assert a_read.wait(30)
        threading.Thread(target=b).start()
        b_waited = not b_done.wait(1.0)
        go.set()
        a.join(30)
        assert b_done.wait(30)
    finally:
        run_store._locked = locked
    assert set(records.read("it-1")["steps"]) == {"build_dataset", "finetune", "evaluate"}
    if store.engine.dialect.name == "postgresql":
        assert b_waited and reads_by_a == [1]  # row lock: B merged after A committed
    else:
        assert not b_waited and reads_by_a == [1, 2]  # no lock: A read again and merged


def test_many_threads_recording_steps_of_one_run_lose_none(records):
    def record_steps(thread: int) -> None:
        for i in range(15):
            records.update("it-1", status=RunStatus.RUNNING, steps={f"t{thread}-{i}": {"i": i}})

    threads = [threading.Thread(target=record_steps, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    steps = records.read("it-1")["steps"]
    assert sorted(steps) == sorted(f"t{t}-{i}" for t in range(4) for i in range(15))


def _record_steps_in_process(url, schema, worker, barrier):
    from app.store.session import open_store

    store = open_store(url, schema=schema, migrate=False)
    try:
        records = RunRecords(SqlRunStore(store.engine))
        barrier.wait(60)
        for i in range(20):
            records.update("it-1", steps={f"w{worker}-{i}": {"finished_at": time.time()}})
    finally:
        store.close()


def test_two_processes_recording_steps_of_one_run_lose_none(records, store):
    """Two OS processes with their own connections: two workers on two machines, as far as the
    database can tell."""
    records.update("it-1", status=RunStatus.RUNNING)
    url = store.engine.url.render_as_string(hide_password=False)
    schema = _schema_of(store)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_record_steps_in_process, args=(url, schema, w, barrier))
             for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    steps = records.read("it-1")["steps"]
    assert sorted(steps) == sorted(f"w{w}-{i}" for w in range(2) for i in range(20))


def _schema_of(store) -> str | None:
    if store.engine.dialect.name != "postgresql":
        return None
    with store.engine.connect() as conn:
        return conn.exec_driver_sql("SELECT current_schema()").scalar()


def test_exactly_one_recoverer_per_interrupted_step(records):
    records.update("it-1", status=RunStatus.RUNNING, current={"step": "finetune"})
    outcomes: list = []
    threads = [threading.Thread(target=lambda: outcomes.append(
        records.claim_recovery("it-1", "finetune.host.42.1.0"))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == [False] * 5 + [True]
    assert records.read("it-1")["recoveries"] == 1
    assert records.claim_recovery("it-1", "finetune.host.43.2.0")  # the next attempt: again once
    assert records.read("it-1")["recoveries"] == 2


def test_a_heartbeat_changes_no_merge(records):
    records.update("it-1", status=RunStatus.RUNNING)
    before = records.read("it-1")
    records.beat("it-1")
    after = records.read("it-1")
    assert after["heartbeat_at"] >= before["updated_at"]
    assert {k: v for k, v in after.items() if k != "heartbeat_at"} == before


def _old_run_file(runs_dir, record: dict) -> None:
    """A record as the JSON-file run store wrote it (indent 2)."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    (runs_dir / f"{record['id']}.json").write_text(json.dumps(record, indent=2))


OLD_RUNS = [
    {"id": "it-old-1", "status": "promoted", "created_at": 1700000000.25, "steps": {
        "build_dataset": {"finished_at": 1700000001.0,
                          "snapshot": {"id": "ds-1", "counts": {"sft": 3}}},
        "promote": {"finished_at": 1700000090.5, "version_id": "mv-1"}},
     "current": None, "wall_s": 90.3, "updated_at": 1700000090.6},
    {"id": "it-old-2", "status": "failed", "created_at": 1700000100.0, "steps": {},
     "error": "RuntimeError('boom')", "recoveries": 2, "updated_at": 1700000101.0},
    {"id": "it-old-3", "status": "running", "created_at": 1700000200.0, "steps": {},
     "current": {"step": "finetune", "host": "h", "pid": 1, "started_at": 1700000201.0,
                 "payload": {"run_id": "it-old-3"}}, "updated_at": 1700000201.0},
]


def test_old_run_files_move_into_the_database_once(store, tmp_path):
    data = DataDir(tmp_path / "data", store.engine.url.render_as_string(hide_password=False))
    for record in OLD_RUNS:
        _old_run_file(data.runs_dir, record)
    (data.runs_dir / "it-bad.json").write_text("{ not json")
    (data.runs_dir / ".it-old-3.heartbeat").touch()  # the old heartbeat files are not records
    records = open_runs(data, engine=store.engine)
    expected = sorted(({k: v for k, v in r.items() if v is not None} for r in OLD_RUNS),
                      key=lambda r: r["created_at"], reverse=True)
    assert records.list() == expected  # every field, times included, as the files had them
    assert sorted(p.name for p in data.runs_dir.glob("*.json*")) == [
        "it-bad.json", "it-old-1.json.imported", "it-old-2.json.imported",
        "it-old-3.json.imported"]  # the unreadable one is left for a person to look at
    assert import_run_files(store.engine, data.runs_dir) == 0
    records.update("it-old-3", status=RunStatus.FAILED)
    _old_run_file(data.runs_dir, OLD_RUNS[2])  # a stale copy turns up again (a backup restored)
    assert import_run_files(store.engine, data.runs_dir) == 0  # the database's record wins
    assert records.read("it-old-3")["status"] == RunStatus.FAILED
    assert len(open_runs(data, engine=store.engine).list()) == 3


def test_migrated_run_table_matches_the_model(store):
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in diff if "flywheel_runs" in repr(d)] == []
