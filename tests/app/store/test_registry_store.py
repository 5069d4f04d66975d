"""The model registry in the database (SQLite and real PostgreSQL): the same lifecycle as the JSON
file registry, promotes racing each other (exactly one wins), and moving an old registry.json in."""
from __future__ import annotations

import multiprocessing
import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.core.registry import open_registry
from app.store.base import Base
from app.store.registry_store import SqlRegistryStore, import_registry_file
from model.registry import ModelRegistry, RegistryConflict, TransitionError, VersionStatus


def _db_registry(store, tmp_path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "registry", store=SqlRegistryStore(store.engine))


def _scenario(registry: ModelRegistry) -> None:
    base = registry.ensure_production("/models/base")
    a = registry.register("a", "/models/a", parent_id=base.id, recipe={"lr": 1e-3},
                          metrics={"acc": 0.5}, content_hash="sha256:aa")
    b = registry.register("b", "/models/b", parent_id=a.id)
    registry.update_metrics(a.id, {"loss": 1.25})
    registry.start_canary(a.id)
    registry.start_canary(b.id)  # replaces a as the canary
    registry.promote(b.id)
    registry.rollback(b.id)  # base is production again, b is retired for good
    c = registry.register("c", "/models/c", parent_id=base.id)
    registry.promote(c.id)
    with pytest.raises(TransitionError):
        registry.promote(b.id)


def _shape(registry: ModelRegistry) -> list:
    """Everything but timestamps and the seq numbers (the database numbers them its own way)."""
    return [(v.id, v.name, v.path, v.parent_id, v.recipe, v.metrics, v.status, v.content_hash,
             [(h["status"], h["reason"], bool(h.get("rolled_back"))) for h in v.history])
            for v in registry.list()]


def test_database_registry_behaves_like_the_file_registry(store, tmp_path):
    reference = ModelRegistry(tmp_path / "file-registry")  # the JSON file store
    db = _db_registry(store, tmp_path)
    _scenario(reference)
    _scenario(db)
    assert _shape(db) == _shape(reference)
    assert db.production().id == "mv-0004" and db.canary() is None
    assert db.get("mv-0002").metrics == {"acc": 0.5, "loss": 1.25}
    seqs = [h["seq"] for v in db.list() for h in v.history]
    assert len(set(seqs)) == len(seqs)  # one global order of status changes


def _race(registry: ModelRegistry, store, calls, parties: int) -> list:
    """Run `calls` in threads that all read the registry before any of them writes (a barrier
    after each transaction's read): the worst interleaving, every time."""
    sql_store = registry.store
    barrier = threading.Barrier(parties)
    load = sql_store._load

    def load_then_wait(conn):
        loaded = load(conn)
        if threading.current_thread() is not threading.main_thread():
            barrier.wait(timeout=30)
        return loaded

    sql_store._load = load_then_wait
    outcomes: list = [None] * len(calls)

    def run(i, call):
        try:
            outcomes[i] = call()
        except Exception as e:  # noqa: BLE001 - collected for the assertions
            outcomes[i] = e

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    sql_store._load = load
    return outcomes


def test_two_promotes_at_once_exactly_one_wins(store, tmp_path):
    registry = _db_registry(store, tmp_path)
    base = registry.ensure_production("/models/base")
    a = registry.register("a", "/models/a", parent_id=base.id)
    b = registry.register("b", "/models/b", parent_id=base.id)
    outcomes = _race(registry, store, [lambda: registry.promote(a.id),
                                       lambda: registry.promote(b.id)], parties=2)
    wins = [o for o in outcomes if not isinstance(o, Exception)]
    assert len(wins) == 1, outcomes
    assert isinstance(next(o for o in outcomes if isinstance(o, Exception)), RegistryConflict)
    winner = wins[0].id
    loser = b.id if winner == a.id else a.id
    assert [v.id for v in registry.with_status(VersionStatus.PRODUCTION)] == [winner]
    assert registry.get(loser).status == VersionStatus.CANDIDATE
    assert len(registry.get(loser).history) == 1  # nothing of the losing promote was kept
    assert registry.get(base.id).status == VersionStatus.RETIRED
    assert [h["reason"] for h in registry.get(base.id).history][-1] == f"replaced by {winner}"


def test_the_same_promote_twice_at_once_is_recorded_once(store, tmp_path):
    registry = _db_registry(store, tmp_path)
    base = registry.ensure_production("/models/base")
    a = registry.register("a", "/models/a", parent_id=base.id)
    outcomes = _race(registry, store, [lambda: registry.promote(a.id)] * 2, parties=2)
    assert sum(isinstance(o, RegistryConflict) for o in outcomes) == 1, outcomes
    assert [h["status"] for h in registry.get(a.id).history] == ["candidate", "production"]


def test_many_promotes_at_once_leave_one_production(store, tmp_path):
    """No barrier: whatever the interleaving, one production version, and every promote that
    returned is in the history while every one that raised left no trace."""
    registry = _db_registry(store, tmp_path)
    registry.ensure_production("/models/base")
    ids = [registry.register(f"c{i}", f"/models/c{i}").id for i in range(6)]
    outcomes = [None] * len(ids)

    def run(i):
        try:
            outcomes[i] = registry.promote(ids[i])
        except RegistryConflict as e:
            outcomes[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(ids))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(o is not None for o in outcomes)
    assert len(registry.with_status(VersionStatus.PRODUCTION)) == 1
    for vid, o in zip(ids, outcomes):
        promoted = [h for h in registry.get(vid).history if h["status"] == "production"]
        assert len(promoted) == (0 if isinstance(o, RegistryConflict) else 1)


def _promote_in_process(url, schema, registry_dir, version_id, barrier, results):
    from app.store.session import open_store

    store = open_store(url, schema=schema, migrate=False)
    sql_store = SqlRegistryStore(store.engine)
    load = sql_store._load
    sql_store._load = lambda conn: (load(conn), barrier.wait(30))[0]
    try:
        ModelRegistry(registry_dir, store=sql_store).promote(version_id)
        results.put((version_id, "won"))
    except RegistryConflict:
        results.put((version_id, "conflict"))
    finally:
        store.close()


def test_two_processes_promote_at_once(store, tmp_path, request):
    """Two OS processes with their own connections (two machines, as far as the database knows)."""
    registry = _db_registry(store, tmp_path)
    base = registry.ensure_production("/models/base")
    a = registry.register("a", "/models/a", parent_id=base.id)
    b = registry.register("b", "/models/b", parent_id=base.id)
    url = store.engine.url.render_as_string(hide_password=False)
    schema = store.schema if hasattr(store, "schema") else _schema_of(store)
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_promote_in_process,
                         args=(url, schema, tmp_path / "registry", vid, barrier, results))
             for vid in (a.id, b.id)]
    for p in procs:
        p.start()
    outcome = dict(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert sorted(outcome.values()) == ["conflict", "won"], outcome
    winner = next(vid for vid, o in outcome.items() if o == "won")
    assert [v.id for v in registry.with_status(VersionStatus.PRODUCTION)] == [winner]


def _schema_of(store) -> str | None:
    if store.engine.dialect.name != "postgresql":
        return None
    with store.engine.connect() as conn:
        return conn.exec_driver_sql("SELECT current_schema()").scalar()


def test_an_existing_registry_json_moves_into_the_database(store, tmp_path):
    registry_dir = tmp_path / "data" / "registry"
    old = ModelRegistry(registry_dir)  # a data dir from before the database registry
    _scenario(old)
    expected = _shape(old)
    url = store.engine.url.render_as_string(hide_password=False)
    moved = open_registry(registry_dir, url, engine=store.engine)
    assert _shape(moved) == expected
    assert not (registry_dir / "registry.json").exists()
    assert (registry_dir / "registry.json.imported").is_file()
    assert import_registry_file(store.engine, registry_dir) == 0  # once only
    # the order of status changes survived: rolling back c's promotion restores base, the
    # production before it (b was rolled back, so it is never restored)
    assert moved.rollback("mv-0004").id == "mv-base"


def test_import_does_not_overwrite_a_database_registry(store, tmp_path):
    db = _db_registry(store, tmp_path)
    db.ensure_production("/models/served")
    stale = ModelRegistry(tmp_path / "stale")
    stale.ensure_production("/models/other", version_id="mv-other")
    assert import_registry_file(store.engine, tmp_path / "stale") == 0
    assert [v.id for v in db.list()] == ["mv-base"]
    assert (tmp_path / "stale" / "registry.json").is_file()  # left for a person to look at


def test_migrated_registry_tables_match_the_models(store):
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    ours = [d for d in diff if "model_versions" in repr(d) or "model_version_events" in repr(d)]
    assert ours == []
