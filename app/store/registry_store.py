"""The model registry in the database: `SqlRegistryStore` for `model.registry.ModelRegistry`.

Optimistic concurrency that behaves the same on SQLite and PostgreSQL: a transaction reads every
version (and its `rev`), lets the registry change them in memory, then writes in one database
transaction where each changed row is `UPDATE ... WHERE id = :id AND rev = :rev` and must match
exactly one row. Whoever committed first bumped `rev`, so the later writer's UPDATE matches none
and the whole change rolls back as `RegistryConflict`: of two promotes at once exactly one wins.
Inserts of the same id, or a second production/canary (partial unique indexes), fail the same way.
"""
from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, Row, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.store.registry_models import ModelVersionEvent, ModelVersionRow
from model.registry_file import REGISTRY_FILE, read_registry_file
from model.registry_types import ModelVersion, RegistryConflict, VersionStatus

logger = logging.getLogger(__name__)
IMPORTED_SUFFIX = ".imported"  # registry.json is renamed to this once it is in the database
_FIELDS = ("name", "path", "parent_id", "dataset_snapshot_id", "recipe", "metrics", "status",
           "created_at", "content_hash")
# Rows that stop being production/canary are written before rows that start being one, so the
# one-production index never sees two at once inside a promote.
_HOLDS_UNIQUE = (VersionStatus.PRODUCTION, VersionStatus.CANARY)


class SqlRegistryStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def read(self) -> dict[str, ModelVersion]:
        with self.engine.connect() as conn:
            return self._load(conn)[0]

    def revision(self) -> int | None:
        with self.engine.connect() as conn:
            return conn.execute(select(func.max(ModelVersionEvent.seq))).scalar()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[dict[str, ModelVersion]]:
        with self.engine.connect() as conn:
            versions, revs = self._load(conn)
            conn.rollback()  # the read's snapshot ends here; the write below re-checks each row
            before = {vid: copy.deepcopy(v.to_dict()) for vid, v in versions.items()}
            yield versions
            try:
                with conn.begin():
                    self._write(conn, versions, before, revs)
            except IntegrityError as e:
                raise RegistryConflict(f"the model registry changed concurrently ({e.orig})") from e

    # ---- internals ---------------------------------------------------------------------------
    def _load(self, conn) -> tuple[dict[str, ModelVersion], dict[str, int]]:
        rows = conn.execute(select(ModelVersionRow)).all()
        events = conn.execute(select(ModelVersionEvent).order_by(ModelVersionEvent.seq)).all()
        history: dict[str, list[dict]] = {}
        for e in events:
            entry = {"status": VersionStatus(e.status), "at": e.at, "reason": e.reason,
                     "seq": e.seq}
            if e.rolled_back:
                entry["rolled_back"] = True
            history.setdefault(e.version_id, []).append(entry)
        # registration order: a version's first event (ids break ties for rows without events)
        first = {vid: h[0]["seq"] for vid, h in history.items()}
        rows.sort(key=lambda r: (first.get(r.id, 0), r.id))
        versions = {r.id: _version(r, history.get(r.id, [])) for r in rows}
        return versions, {r.id: r.rev for r in rows}

    def _write(self, conn, versions: dict[str, ModelVersion], before: dict[str, dict],
               revs: dict[str, int]) -> None:
        changed = [v for vid, v in versions.items()
                   if vid in before and _columns(v) != _columns_of(before[vid])]
        changed.sort(key=lambda v: v.status in _HOLDS_UNIQUE)
        for v in changed:
            result = conn.execute(update(ModelVersionRow)
                                  .where(ModelVersionRow.id == v.id,
                                         ModelVersionRow.rev == revs[v.id])
                                  .values(**_columns(v), rev=revs[v.id] + 1))
            if result.rowcount != 1:
                raise RegistryConflict(f"model version {v.id} was changed by another process")
        for vid, v in versions.items():
            if vid not in before:
                conn.execute(insert(ModelVersionRow).values(id=vid, **_columns(v), rev=1))
        new_events = [(entry.get("seq", 0), vid, entry) for vid, v in versions.items()
                      for entry in v.history[len(before[vid]["history"]) if vid in before else 0:]]
        for _, vid, entry in sorted(new_events, key=lambda t: t[0]):  # in the order they happened
            entry["seq"] = _insert_event(conn, vid, entry)


def _columns(v: ModelVersion) -> dict:
    return {f: getattr(v, f) for f in _FIELDS} | {"status": str(v.status)}


def _columns_of(d: dict) -> dict:
    return {f: d[f] for f in _FIELDS} | {"status": str(d["status"])}


def _version(r: Row, history: list[dict]) -> ModelVersion:
    return ModelVersion(id=r.id, name=r.name, path=r.path, parent_id=r.parent_id,
                        dataset_snapshot_id=r.dataset_snapshot_id, recipe=r.recipe or {},
                        metrics=r.metrics or {}, status=r.status, created_at=r.created_at,
                        history=history, content_hash=r.content_hash)


def _insert_event(conn, version_id: str, entry: dict) -> int:
    result = conn.execute(insert(ModelVersionEvent).values(
        version_id=version_id, status=str(entry["status"]), at=entry["at"],
        reason=entry.get("reason", ""), rolled_back=bool(entry.get("rolled_back"))))
    return result.inserted_primary_key[0]


def import_registry_file(engine: Engine, registry_dir: str | Path) -> int:
    """Move an existing `registry.json` (a data dir from before the registry was in the database)
    into the database, once: only into an empty registry, in one transaction, keeping ids,
    statuses, metrics and the order of every status change. The file is then renamed to
    `registry.json.imported` so nothing reads a stale copy. Returns how many versions came in."""
    path = Path(registry_dir) / REGISTRY_FILE
    if not path.is_file():
        return 0
    versions = read_registry_file(path)  # ValueError on a corrupt file: the caller shows it
    try:
        with engine.begin() as conn:
            if conn.execute(select(func.count()).select_from(ModelVersionRow)).scalar():
                return 0  # another process imported it first, or the database is the registry
            for v in versions.values():
                conn.execute(insert(ModelVersionRow).values(id=v.id, **_columns(v), rev=1))
            # status changes in their original order, so rollback still finds the version that
            # was production before (seq values are renumbered by the database, order is kept)
            entries = sorted(((h.get("seq", 0), i, v.id, h) for v in versions.values()
                              for i, h in enumerate(v.history)), key=lambda t: (t[0], t[1]))
            for _, _, vid, entry in entries:
                _insert_event(conn, vid, entry)
    except IntegrityError:
        return 0  # a concurrent importer won; its copy is the same file
    path.rename(path.with_name(REGISTRY_FILE + IMPORTED_SUFFIX))
    logger.info("imported %d model versions from %s into the database", len(versions), path)
    return len(versions)
