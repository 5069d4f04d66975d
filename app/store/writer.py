"""Background writer: chat history is written off the request path so streaming never waits on
the database.

Each job is one function run in its own transaction. A failed job is retried with exponential
backoff; after `max_retries` it is logged with its content (at ERROR) and counted — never silently
dropped. `flush()` waits until everything queued so far is written; `close()` drains and stops.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.store.session import Store

logger = logging.getLogger(__name__)

Job = Callable[[Session], None]


@dataclass(slots=True)
class WriterStats:
    num_written: int = 0
    num_retries: int = 0
    num_failed: int = 0


class StoreWriter:
    def __init__(self, store: Store, max_retries: int = 8, backoff_s: float = 0.05) -> None:
        self._store = store
        self._max_retries = max_retries
        self._backoff_s = backoff_s
        # (description, job) to write, a threading.Event to set (flush), or None to stop.
        self._jobs: queue.Queue[tuple[str, Job] | threading.Event | None] = queue.Queue()
        self.stats = WriterStats()
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    def submit(self, description: str, job: Job) -> None:
        """Queue `job(session)`; returns at once. `description` names the job in logs."""
        if not self._thread.is_alive():
            raise RuntimeError("store writer is closed")
        self._jobs.put((description, job))

    def flush(self, timeout_s: float | None = None) -> bool:
        """Block until every job queued before this call has been written (or given up on)."""
        if not self._thread.is_alive():
            return True
        done = threading.Event()
        self._jobs.put(done)
        return done.wait(timeout_s)

    def close(self, timeout_s: float = 30.0) -> None:
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while (item := self._jobs.get()) is not None:
            if isinstance(item, threading.Event):
                item.set()
            else:
                self._write(*item)

    def _write(self, description: str, job: Job) -> None:
        delay_s = self._backoff_s
        for attempt in range(self._max_retries + 1):
            try:
                with self._store.transaction() as session:
                    job(session)
                self.stats.num_written += 1
                return
            except Exception:  # noqa: BLE001 - any database error is retried, then logged
                if attempt == self._max_retries:
                    self.stats.num_failed += 1
                    logger.exception("store write %s failed after %d attempts; not written",
                                     description, attempt + 1)
                    return
                self.stats.num_retries += 1
                logger.warning("store write %s failed (attempt %d), retrying in %.2fs",
                               description, attempt + 1, delay_s, exc_info=True)
                time.sleep(delay_s)
                delay_s = min(delay_s * 2, 5.0)
