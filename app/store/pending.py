"""Read-your-writes: what the outbox holds that the store may not have yet, indexed by id.

Request handlers consult this before the store, so an answer is visible (to continue, regenerate,
give feedback on, read) the moment its client has it, however far behind the store writer is.
Entries are added once they are on disk and removed once the store has committed them (never
before), so a reader that misses here finds the row in the store.

Thread-safe: the outbox's committer adds, the store writer removes, request threads read.
"""
from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from app.store.base import utcnow
from app.store.crud_chat import ConversationDeletion, ExchangeRecord, FeedbackRecord, MessageRecord

if TYPE_CHECKING:
    from app.store.outbox import OutboxEntry


@dataclass(slots=True)
class PendingMessage:
    record: MessageRecord
    conversation_id: str
    owner_id: str  # the conversation's owner
    created_at: datetime


@dataclass(slots=True)
class PendingConversation:
    """A conversation created by an exchange that is not in the store yet."""
    id: str
    user_id: str
    title: str | None
    model: str | None
    created_at: datetime
    updated_at: datetime
    messages: list[PendingMessage] = field(default_factory=list)


class PendingIndex:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[int, OutboxEntry] = {}  # by seq, in seq order
        self._messages: dict[str, PendingMessage] = {}
        self._by_conversation: dict[str, list[PendingMessage]] = defaultdict(list)
        self._created: dict[str, PendingConversation] = {}
        self._feedback: dict[str, list[FeedbackRecord]] = defaultdict(list)
        self._deleted: dict[str, int] = defaultdict(int)  # conversation id -> pending deletions
        self.last_seq = 0

    @property
    def num_entries(self) -> int:
        return len(self._entries)

    def contains(self, seq: int) -> bool:
        with self._lock:
            return seq in self._entries

    def oldest(self, limit: int) -> list[OutboxEntry]:
        with self._lock:
            return [entry for _, entry in zip(range(limit), self._entries.values())]

    # -- reads ----------------------------------------------------------------------------------
    def message(self, message_id: str) -> PendingMessage | None:
        with self._lock:
            found = self._messages.get(message_id)
            return None if found is None or self._deleted.get(found.conversation_id) else found

    def conversation(self, conversation_id: str) -> PendingConversation | None:
        """A conversation created by a pending exchange, with its pending messages."""
        with self._lock:
            created = self._created.get(conversation_id)
            if created is None or self._deleted.get(conversation_id):
                return None
            return PendingConversation(created.id, created.user_id, created.title, created.model,
                                       created.created_at, self._updated_at(created),
                                       list(self._by_conversation[conversation_id]))

    def messages_of(self, conversation_id: str) -> list[PendingMessage]:
        """Pending messages of a conversation, oldest first."""
        with self._lock:
            return list(self._by_conversation.get(conversation_id, ()))

    def feedback_of(self, message_id: str) -> list[FeedbackRecord]:
        with self._lock:
            return list(self._feedback.get(message_id, ()))

    def feedback_by_message(self) -> dict[str, list[FeedbackRecord]]:
        """All pending feedback (a copy), by message id."""
        with self._lock:
            return {message_id: list(items) for message_id, items in self._feedback.items()}

    def is_deleted(self, conversation_id: str) -> bool:
        with self._lock:
            return bool(self._deleted.get(conversation_id))

    def conversations_of(self, user_id: str) -> list[PendingConversation]:
        with self._lock:
            ids = [c.id for c in self._created.values() if c.user_id == user_id]
        return [c for c in map(self.conversation, ids) if c is not None]

    # -- changes ----------------------------------------------------------------------------------
    def add(self, entry: OutboxEntry) -> None:
        with self._lock:
            self._entries[entry.seq] = entry
            self.last_seq = max(self.last_seq, entry.seq)
            record = entry.record
            if isinstance(record, ExchangeRecord):
                self._add_exchange(record)
            elif isinstance(record, FeedbackRecord):
                self._feedback[record.message_id].append(record)
            elif isinstance(record, ConversationDeletion):
                self._deleted[record.conversation_id] += 1

    def remove(self, entry: OutboxEntry) -> None:
        with self._lock:
            if self._entries.pop(entry.seq, None) is None:
                return
            record = entry.record
            if isinstance(record, ExchangeRecord):
                self._remove_exchange(record)
            elif isinstance(record, FeedbackRecord):
                _discard(self._feedback, record.message_id, record)
            elif isinstance(record, ConversationDeletion):
                self._deleted[record.conversation_id] -= 1
                if not self._deleted[record.conversation_id]:
                    del self._deleted[record.conversation_id]

    def _add_exchange(self, record: ExchangeRecord) -> None:
        created_at = record.created_at or utcnow()
        if record.create_conversation and record.conversation_id not in self._created:
            self._created[record.conversation_id] = PendingConversation(
                record.conversation_id, record.user_id, record.title, record.model, created_at,
                created_at)
        for message in record.messages:
            pending = PendingMessage(message, record.conversation_id, record.user_id, created_at)
            self._messages[message.id] = pending
            self._by_conversation[record.conversation_id].append(pending)

    def _remove_exchange(self, record: ExchangeRecord) -> None:
        for message in record.messages:
            pending = self._messages.pop(message.id, None)
            if pending is not None:
                _discard(self._by_conversation, record.conversation_id, pending)
        if record.create_conversation:  # the store has the conversation row now
            self._created.pop(record.conversation_id, None)

    def _updated_at(self, conversation: PendingConversation) -> datetime:
        messages = self._by_conversation.get(conversation.id)
        return messages[-1].created_at if messages else conversation.updated_at


def _discard(groups: dict, key: str, item) -> None:
    items = groups.get(key)
    if items is not None and item in items:
        items.remove(item)
        if not items:
            del groups[key]
