"""Background writer: applies the outbox to the store, in order, off the request path.

Entries are applied in batches, one transaction each, and acknowledged to the outbox only after
the store committed them. A failure is retried with exponential backoff (capped at
`max_backoff_s`) for as long as it takes: a store that is down, locked or slow only makes the
outbox grow, and the outbox's bound turns new chats away (503) before anything is lost. The one
exception is an entry the store refuses for good (a constraint or data error, alone, several
times in a row while it is the only thing tried): it is set aside in the outbox, logged at ERROR
and counted, so it cannot hold up everything behind it forever.

`flush()` (tests, shutdown) waits until what was appended before the call is applied; request
handlers never call it — they read pending records from the outbox instead.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from app.store import crud_chat, crud_feedback
from app.store.crud_chat import ConversationDeletion, ExchangeRecord, FeedbackRecord
from app.store.outbox import Outbox, OutboxEntry, OutboxRecord
from app.store.session import Store

logger = logging.getLogger(__name__)

# Errors that the same entry will raise again however long we wait (vs. locks, lost connections).
_PERMANENT_ERRORS = (sa_exc.IntegrityError, sa_exc.DataError, TypeError, ValueError, LookupError)
_ATTEMPTS_BEFORE_PARKING = 5
_IDLE_WAIT_S = 0.5


@dataclass(slots=True)
class WriterStats:
    num_written: int = 0  # entries applied to the store (replays that found their rows count too)
    num_retries: int = 0  # failed attempts that were retried
    num_failed: int = 0  # entries set aside because the store refused them for good


class StoreWriter:
    def __init__(self, store: Store, outbox: Outbox, backoff_s: float = 0.05,
                 max_backoff_s: float = 5.0, max_batch: int = 64) -> None:
        self._store = store
        self._outbox = outbox
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._max_batch = max_batch
        self._stop = threading.Event()
        self.stats = WriterStats(num_failed=outbox.num_parked())
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    def flush(self, timeout_s: float | None = None) -> bool:
        """Block until every entry appended before this call is applied (or set aside)."""
        return self._outbox.wait_drained(self._outbox.last_seq, timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Drain for up to `timeout_s`, then stop; what is left stays in the outbox for the next
        start."""
        if self._thread.is_alive():
            self.flush(timeout_s)
            self._stop.set()
            self._thread.join(timeout_s)

    def _run(self) -> None:
        delay_s, batch_size, failures = self._backoff_s, self._max_batch, 0
        while not self._stop.is_set():
            entries = self._outbox.peek(batch_size)
            if not entries:
                self._outbox.wait_for_entries(_IDLE_WAIT_S)
                continue
            error = self._apply(entries)
            if error is None:
                self._outbox.ack(entries)
                self.stats.num_written += len(entries)
                delay_s, batch_size, failures = self._backoff_s, self._max_batch, 0
                continue
            if len(entries) == 1 and isinstance(error, _PERMANENT_ERRORS):
                failures += 1
                if failures >= _ATTEMPTS_BEFORE_PARKING:
                    self._outbox.park(entries[0], f"{type(error).__name__}: {error}")
                    self.stats.num_failed += 1
                    failures = 0
                    continue
            self.stats.num_retries += 1
            logger.warning("store write of %d entries (from #%d) failed, retrying in %.2fs: %s",
                           len(entries), entries[0].seq, delay_s, error)
            batch_size = 1  # one at a time until it works, so one bad entry is found alone
            self._stop.wait(delay_s)
            delay_s = min(delay_s * 2, self._max_backoff_s)

    def _apply(self, entries: list[OutboxEntry]) -> Exception | None:
        try:
            with self._store.transaction() as session:
                for entry in entries:
                    apply_record(session, entry.record)
        except Exception as e:  # noqa: BLE001 - every failure is retried or set aside above
            return e
        return None


def apply_record(session: Session, record: OutboxRecord) -> bool:
    """Apply one outbox record; False when the store already had it (idempotent replay)."""
    if isinstance(record, ExchangeRecord):
        return crud_chat.record_exchange(session, exchange=record)
    if isinstance(record, FeedbackRecord):
        return crud_feedback.record_feedback(session, feedback=record)
    assert isinstance(record, ConversationDeletion), f"not an outbox record: {record!r}"
    return crud_chat.apply_deletion(session, deletion=record)
