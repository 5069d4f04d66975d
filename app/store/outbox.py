"""The durable outbox: writes the server owes the store, on local disk before a client is told.

A SQLite file under the data dir in WAL mode with `synchronous=FULL`: `append` returns once the
record's commit is on disk, so an answer whose last chunk was sent survives kill -9 and power
loss. Concurrent appends share one commit (group commit): a committer thread takes everything
queued, writes it in one transaction and then resolves each caller's future. The `StoreWriter`
applies pending entries to the store in order and acknowledges them; an entry not acknowledged
when the process dies is pending again at the next open (applying is idempotent by id).

The outbox knows nothing about the store's tables: entries are the record dataclasses of
`app.store.crud_chat`, kept as JSON. It is bounded by `max_records`: `has_room()` is the
admission check for new work; an append itself is never refused, so work already admitted (an
answer being generated) is always kept, overshooting the bound by at most what was running.
"""
from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import logging
import queue
import sqlite3
import threading
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path

from app.store.crud_chat import ConversationDeletion, ExchangeRecord, FeedbackRecord, MessageRecord
from app.store.pending import PendingIndex

logger = logging.getLogger(__name__)

OutboxRecord = ExchangeRecord | FeedbackRecord | ConversationDeletion
_MAX_GROUP = 512  # appends committed together at most


class EntryKind(str, Enum):
    EXCHANGE = "exchange"
    FEEDBACK = "feedback"
    DELETION = "deletion"


@dataclass(slots=True, frozen=True)
class OutboxEntry:
    seq: int  # order of appending: the writer applies entries in this order
    record: OutboxRecord


@dataclass(slots=True)
class _Append:
    record: OutboxRecord
    done: Future  # resolved with the OutboxEntry once its commit is on disk


@dataclass(slots=True)
class _Settle:
    seqs: list[int]
    parked_reason: str | None  # None: applied to the store (deleted here); else kept, set aside


def outbox_path(data_dir: Path, database_url: str, schema: str | None) -> Path:
    """One outbox per store: servers on one data dir but different databases never mix them."""
    key = hashlib.sha256(f"{database_url}|{schema or ''}".encode()).hexdigest()[:16]
    return Path(data_dir) / "outbox" / f"{key}.db"


class Outbox:
    def __init__(self, path: Path, max_records: int) -> None:
        assert max_records > 0, "the outbox needs room for at least one record"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_records = max_records
        self._lock_file = _lock_exclusively(path.with_suffix(".lock"))
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")  # fsync each commit: durable on power loss
        self._conn.execute("CREATE TABLE IF NOT EXISTS entries (seq INTEGER PRIMARY KEY "
                           "AUTOINCREMENT, kind TEXT NOT NULL, payload TEXT NOT NULL, "
                           "parked_reason TEXT)")
        self.index = PendingIndex()
        self.num_commits = 0  # disk commits so far: fewer than appends when they were grouped
        self._changed = threading.Condition()
        # seq -> futures of handlers waiting (on their event loops) for the entry to be applied
        self._waiters: dict[int, list[tuple[asyncio.AbstractEventLoop, asyncio.Future]]] = {}
        self._ops: queue.Queue[_Append | _Settle | None] = queue.Queue()
        self.num_replayed = self._load()
        self._committer = threading.Thread(target=self._commit_loop, name="outbox-committer",
                                           daemon=True)
        self._committer.start()

    # -- admission and appends (request handlers) --------------------------------------------
    @property
    def depth(self) -> int:
        """Entries waiting to be applied to the store."""
        return self.index.num_entries

    @property
    def capacity(self) -> int:
        return self.max_records

    def has_room(self) -> bool:
        return self.depth < self.max_records

    def append(self, record: OutboxRecord) -> OutboxEntry:
        """Blocks until `record` is on disk; raises what the disk raised."""
        return self.submit(record).result()

    async def append_async(self, record: OutboxRecord) -> OutboxEntry:
        # Shielded: a caller cancelled meanwhile (its client left) must not cancel the append.
        return await asyncio.shield(asyncio.wrap_future(self.submit(record)))

    def submit(self, record: OutboxRecord) -> Future:
        if not self._committer.is_alive():
            raise RuntimeError("the outbox is closed")
        done: Future = Future()
        self._ops.put(_Append(record, done))
        return done

    async def applied(self, entry: OutboxEntry, timeout_s: float) -> bool:
        """Wait, without holding a thread, until the writer applied `entry` to the store; False
        after `timeout_s`. Lets a handler make its write visible to store-only readers (the
        review queue, reports) in the usual case without ever waiting on a slow store."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        with self._changed:
            if not self.index.contains(entry.seq):
                return True
            self._waiters.setdefault(entry.seq, []).append((loop, done))
        try:
            await asyncio.wait_for(done, timeout_s)
            return True
        except asyncio.TimeoutError:
            return False

    # -- draining (the store writer) ----------------------------------------------------------
    def peek(self, limit: int) -> list[OutboxEntry]:
        """The oldest pending entries, in order."""
        return self.index.oldest(limit)

    def wait_for_entries(self, timeout_s: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.depth > 0, timeout_s)

    def wait_drained(self, upto_seq: int, timeout_s: float | None) -> bool:
        """Until every entry with seq <= `upto_seq` is applied (or set aside)."""
        def drained() -> bool:
            oldest = self.index.oldest(1)
            return not oldest or oldest[0].seq > upto_seq
        with self._changed:
            return self._changed.wait_for(drained, timeout_s)

    @property
    def last_seq(self) -> int:
        return self.index.last_seq

    def ack(self, entries: list[OutboxEntry]) -> None:
        """`entries` are in the store: reads go there from now on; their rows are deleted."""
        self._settle(entries, None)

    def park(self, entry: OutboxEntry, reason: str) -> None:
        """The store refuses `entry` for good (not a transient error): keep it on disk, out of
        the way of the entries behind it, for an operator to look at."""
        logger.error("outbox entry %d (%s) set aside: %s", entry.seq, _kind(entry.record).value,
                     reason)
        self._parked += 1
        self._settle([entry], reason)

    def num_parked(self) -> int:
        return self._parked

    def close(self) -> None:
        if self._committer.is_alive():
            self._ops.put(None)
            self._committer.join(30)
        self._conn.close()
        self._lock_file.close()

    # -- the committer thread -----------------------------------------------------------------
    def _settle(self, entries: list[OutboxEntry], parked_reason: str | None) -> None:
        with self._changed:
            for entry in entries:
                self.index.remove(entry)
                for loop, done in self._waiters.pop(entry.seq, ()):
                    loop.call_soon_threadsafe(_resolve, done)
            self._changed.notify_all()
        if self._committer.is_alive():
            self._ops.put(_Settle([e.seq for e in entries], parked_reason))

    def _commit_loop(self) -> None:
        while (first := self._ops.get()) is not None:
            group = [first]
            while len(group) < _MAX_GROUP:
                try:
                    op = self._ops.get_nowait()
                except queue.Empty:
                    break
                if op is None:
                    self._ops.put(None)  # stop after this group
                    break
                group.append(op)
            try:
                self._commit(group)
            except Exception as e:  # noqa: BLE001 - keep committing; never leave a caller hanging
                logger.exception("outbox committer failed on a group of %d", len(group))
                for op in group:
                    if isinstance(op, _Append) and not op.done.done():
                        op.done.set_exception(e)

    def _commit(self, group: list[_Append | _Settle]) -> None:
        appends = [op for op in group if isinstance(op, _Append)]
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            seqs = [self._insert(op.record) for op in appends]
            for op in group:
                if isinstance(op, _Settle):
                    self._settle_rows(op)
            self._conn.execute("COMMIT")
            self.num_commits += 1
        except Exception as e:  # noqa: BLE001 - the disk said no: every waiting caller hears it
            logger.exception("outbox commit of %d appends failed", len(appends))
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            for op in appends:
                if not op.done.cancelled():
                    op.done.set_exception(e)
            return
        for op, seq in zip(appends, seqs):
            entry = OutboxEntry(seq, op.record)
            self.index.add(entry)
            if not op.done.cancelled():
                op.done.set_result(entry)
        if appends:
            with self._changed:
                self._changed.notify_all()

    def _insert(self, record: OutboxRecord) -> int:
        cursor = self._conn.execute("INSERT INTO entries (kind, payload) VALUES (?, ?)",
                                    (_kind(record).value, json.dumps(_encode(record))))
        return cursor.lastrowid

    def _settle_rows(self, op: _Settle) -> None:
        marks = ",".join("?" * len(op.seqs))
        if op.parked_reason is None:
            self._conn.execute(f"DELETE FROM entries WHERE seq IN ({marks})", op.seqs)
        else:
            self._conn.execute(f"UPDATE entries SET parked_reason = ? WHERE seq IN ({marks})",
                               [op.parked_reason, *op.seqs])

    def _load(self) -> int:
        rows = self._conn.execute("SELECT seq, kind, payload, parked_reason FROM entries "
                                  "ORDER BY seq").fetchall()
        self._parked = sum(1 for row in rows if row[3] is not None)
        pending = [OutboxEntry(seq, _decode(EntryKind(kind), json.loads(payload)))
                   for seq, kind, payload, parked in rows if parked is None]
        for entry in pending:
            self.index.add(entry)
        if pending:
            logger.warning("outbox %s: replaying %d writes left by the last run", self.path,
                           len(pending))
        _warn_about_other_outboxes(self.path)
        return len(pending)


def _warn_about_other_outboxes(path: Path) -> None:
    """Outboxes are per database URL: writes left for a URL this server does not use (it changed)
    are only replayed by a server started with that URL. Say so rather than stay silent."""
    for other in sorted(path.parent.glob("*.db")):
        if other == path:
            continue
        try:
            with sqlite3.connect(f"file:{other}?mode=ro", uri=True) as conn:
                (count,) = conn.execute("SELECT count(*) FROM entries WHERE parked_reason IS NULL"
                                        ).fetchone()
        except sqlite3.Error:
            continue
        if count:
            logger.warning("outbox %s (another database URL) holds %d writes; a server started "
                           "with that database replays them", other, count)


def _resolve(done: asyncio.Future) -> None:
    if not done.done():  # the waiter may have timed out meanwhile
        done.set_result(None)


def _lock_exclusively(path: Path):
    lock_file = open(path, "a+")  # noqa: SIM115 - held open for the outbox's lifetime
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as e:
        lock_file.close()
        raise RuntimeError(f"another server is using the outbox {path.with_suffix('.db')}; give "
                           f"each server its own data dir or database") from e
    return lock_file


def _kind(record: OutboxRecord) -> EntryKind:
    if isinstance(record, ExchangeRecord):
        return EntryKind.EXCHANGE
    if isinstance(record, FeedbackRecord):
        return EntryKind.FEEDBACK
    assert isinstance(record, ConversationDeletion), f"not an outbox record: {record!r}"
    return EntryKind.DELETION


def _encode(record: OutboxRecord) -> dict:
    return asdict(record, dict_factory=lambda items: {
        k: v.isoformat() if isinstance(v, datetime) else v for k, v in items})


def _decode(kind: EntryKind, data: dict) -> OutboxRecord:
    if kind is EntryKind.EXCHANGE:
        messages = [MessageRecord(**m) for m in data.pop("messages")]
        created_at = data.pop("created_at")
        return ExchangeRecord(**data, messages=messages,
                              created_at=datetime.fromisoformat(created_at) if created_at else None)
    if kind is EntryKind.FEEDBACK:
        return FeedbackRecord(**{**data, "created_at": datetime.fromisoformat(data["created_at"])})
    return ConversationDeletion(**data)
