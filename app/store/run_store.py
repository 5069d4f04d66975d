"""The flywheel's iteration run records in the database: `SqlRunStore`.

A record is the dict `GET /v1/flywheel/runs` returns: id, status, created_at, updated_at, steps
(step name -> outcome), and while a step runs `current` (its claim) and `heartbeat_at`; error,
wall_s, recoveries and any other field once set. This module knows no statuses or steps; the
flywheel (app/flywheel/runs.py) does.

Merges are atomic on SQLite and PostgreSQL alike: one transaction reads the row (`FOR UPDATE` on
PostgreSQL, so a second merger waits for the first to commit), merges the new fields and step
entries into it, and writes it back with `WHERE rev = :rev_read`. A write based on a stale read
(SQLite has no row locks) matches no row and the merge is redone on the fresh row, so two
workers finishing different steps of one run at once both keep their step entries.
"""
from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from pathlib import Path

from sqlalchemy import Engine, Row, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.store.run_models import FlywheelRunRow

logger = logging.getLogger(__name__)
IMPORTED_SUFFIX = ".imported"  # <run id>.json is renamed to this once it is in the database
_COLUMNS = ("status", "current", "error", "wall_s", "recoveries")  # other fields go to `extra`
_OMITTED_WHEN_EMPTY = ("current", "heartbeat_at", "error", "wall_s")
_NOT_FIELDS = ("id", "steps", "created_at", "updated_at", "heartbeat_at")  # kept by the store
_MAX_TRIES = 200  # a merge retries only when another one committed in between


class RunConflict(RuntimeError):
    """A merge kept losing to concurrent writers (never expected: each retry re-reads the row)."""


class SqlRunStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def read(self, run_id: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(FlywheelRunRow).where(FlywheelRunRow.id == run_id)).first()
        return None if row is None else _record(row)

    def list(self, statuses: list[str] | None = None) -> list[dict]:
        """Every run (or those whose status is in `statuses`), newest first."""
        query = select(FlywheelRunRow).order_by(FlywheelRunRow.created_at.desc(),
                                                FlywheelRunRow.id.desc())
        if statuses is not None:
            query = query.where(FlywheelRunRow.status.in_(statuses))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [_record(r) for r in rows]

    def merge(self, run_id: str, fields: dict, *, initial_status: str) -> dict:
        """Merge `fields` into the run (creating it with `initial_status`): `steps` entries are
        added to the run's steps, every other field replaces the stored one. Returns the record."""
        fields = _json_safe(fields)
        for attempt in range(_MAX_TRIES):
            try:
                with self.engine.begin() as conn:
                    record = _merge_once(conn, run_id, fields, initial_status)
            except IntegrityError:
                record = None  # created by another writer in between: merge into its row
            if record is not None:
                return record
            time.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))
        raise RunConflict(f"run {run_id}: {_MAX_TRIES} concurrent writers in a row")

    def beat(self, run_id: str) -> None:
        """The running step is alive (no merge: a beat never conflicts with one)."""
        with self.engine.begin() as conn:
            conn.execute(update(FlywheelRunRow).where(FlywheelRunRow.id == run_id)
                         .values(heartbeat_at=time.time()))

    def claim_recovery(self, run_id: str, attempt: str) -> bool:
        """True for exactly one caller per `attempt` (an interrupted step, however many workers
        look at it at once); counts the recovery in the record."""
        for _ in range(_MAX_TRIES):
            with self.engine.begin() as conn:
                row = _locked(conn, run_id)
                if row is None or row.recovered_attempt == attempt:
                    return False
                if _write(conn, row, {"recovered_attempt": attempt,
                                      "recoveries": row.recoveries + 1}):
                    return True
        raise RunConflict(f"run {run_id}: {_MAX_TRIES} concurrent writers in a row")


def _locked(conn, run_id: str) -> Row | None:
    # FOR UPDATE locks the row on PostgreSQL until commit; SQLite ignores it (rev decides there)
    return conn.execute(select(FlywheelRunRow).where(FlywheelRunRow.id == run_id)
                        .with_for_update()).first()


def _merge_once(conn, run_id: str, fields: dict, initial_status: str) -> dict | None:
    """The merged record, or None when another writer changed the row since it was read."""
    row = _locked(conn, run_id)
    columns, extra = _split(fields)
    steps = fields.get("steps") or {}
    if row is None:
        now = time.time()
        values = _new_row({"status": initial_status, **columns}, steps, extra)
        conn.execute(insert(FlywheelRunRow).values(id=run_id, created_at=now, updated_at=now,
                                                   rev=1, **values))
        return _record_of(run_id, now, now, values)
    values = {**columns, "steps": {**(row.steps or {}), **steps}}
    if extra:
        values["extra"] = {**(row.extra or {}), **extra}
    if not _write(conn, row, values):
        return None
    return _record_of(run_id, row.created_at, values["updated_at"],
                      {**_values_of(row), **values})


def _write(conn, row: Row, values: dict) -> bool:
    values.setdefault("updated_at", time.time())
    result = conn.execute(update(FlywheelRunRow)
                          .where(FlywheelRunRow.id == row.id, FlywheelRunRow.rev == row.rev)
                          .values(**values, rev=row.rev + 1))
    return result.rowcount == 1


def _split(fields: dict) -> tuple[dict, dict]:
    """(column values, fields without a column of their own: they go to `extra`)."""
    columns = {k: fields[k] for k in _COLUMNS if k in fields}
    if "status" in columns:
        columns["status"] = str(columns["status"])
    if columns.get("error") is not None:
        columns["error"] = str(columns["error"])
    extra = {k: v for k, v in fields.items() if k not in _COLUMNS and k not in _NOT_FIELDS}
    return columns, extra


def _new_row(columns: dict, steps: dict, extra: dict) -> dict:
    return {"recoveries": 0, **columns, "steps": steps, "extra": extra}


def _values_of(row: Row) -> dict:
    return {c: getattr(row, c) for c in (*_COLUMNS, "steps", "extra", "heartbeat_at")}


def _record_of(run_id: str, created_at: float, updated_at: float, values: dict) -> dict:
    record = {"id": run_id, "status": values["status"], "created_at": created_at,
              "updated_at": updated_at, "steps": values.get("steps") or {}}
    for key in _OMITTED_WHEN_EMPTY:
        if values.get(key) is not None:
            record[key] = values[key]
    if values.get("recoveries"):
        record["recoveries"] = values["recoveries"]
    return {**(values.get("extra") or {}), **record}


def _record(row: Row) -> dict:
    return _record_of(row.id, row.created_at, row.updated_at, _values_of(row))


def _json_safe(value):
    # what the JSON files did (default=str): a Path or a datetime in a step's outcome is kept as
    # text, and the record a merge returns equals the one a later read returns
    return json.loads(json.dumps(value, default=str))


def import_run_files(engine: Engine, runs_dir: str | Path) -> int:
    """Move run records from before they were in the database (`<runs dir>/<id>.json`) into it:
    each file whose run id the database lacks is inserted as it is, then renamed to
    `<id>.json.imported` so it is not read again. A run the database already has is never
    overwritten (idempotent: importing again, or two processes importing at once, adds nothing).
    An unreadable file is logged and left for a person to look at. Returns how many came in."""
    imported = 0
    for path in sorted(Path(runs_dir).glob("*.json")):
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            assert isinstance(raw, dict), "not a JSON object"
        except (OSError, ValueError, AssertionError) as e:
            logger.warning("run record %s not imported: %s", path, e)
            continue
        imported += _import_one(engine, str(raw.get("id") or path.stem), _json_safe(raw))
        with contextlib.suppress(FileNotFoundError):  # another importer renamed it first
            path.rename(path.with_name(path.name + IMPORTED_SUFFIX))
    if imported:
        logger.info("imported %d flywheel run records from %s into the database", imported,
                    runs_dir)
    return imported


def _import_one(engine: Engine, run_id: str, raw: dict) -> int:
    created_at = float(raw.get("created_at") or time.time())
    columns, extra = _split(raw)
    values = _new_row({"status": "queued", **columns}, raw.get("steps") or {}, extra)
    try:
        with engine.begin() as conn:
            if conn.execute(select(FlywheelRunRow.id).where(FlywheelRunRow.id == run_id)).first():
                return 0
            conn.execute(insert(FlywheelRunRow).values(
                id=run_id, created_at=created_at,
                updated_at=float(raw.get("updated_at") or created_at),
                rev=1, **values))
    except IntegrityError:
        return 0  # a concurrent importer inserted it
    return 1
