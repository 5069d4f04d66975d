"""A change to a person's feedback on one message, and how changes fold into the current record.

Feedback is one record per (user, message). Each POST /v1/feedback is a change: the fields it
names replace the record's, the fields it leaves out keep their value (an explicit null clears
one). The change travels through the durable outbox as a `FeedbackRecord`; the store applies it
in place (`app.store.crud_feedback`) and keeps it as an audit row, and readers that see changes
the store has not applied yet fold them here onto what the store holds. No SQL in this module.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime, timezone

FEEDBACK_FIELDS = ("thumbs", "rating", "tags", "comment", "correction")


@dataclass(slots=True)
class FeedbackRecord:
    """One change, as the API received it. Outbox entries written before upserts existed carry
    `fields=None`: they were whole records, where null meant "not given"."""
    id: str  # the change's own id: the audit row's key, so a replay is applied once
    message_id: str
    user_id: str | None
    thumbs: str | None
    rating: int | None
    tags: list[str]
    comment: str | None
    correction: str | None
    created_at: datetime  # when the change was made
    fields: list[str] | None = None  # the fields this change sets (None: its non-empty ones)
    feedback_id: str | None = None  # the record's id, used when this change creates it

    def values(self) -> dict:
        """{field: new value} for the fields this change sets."""
        if self.fields is None:
            return {name: getattr(self, name) for name in FEEDBACK_FIELDS if getattr(self, name)}
        return {name: getattr(self, name) for name in self.fields}


@dataclass(slots=True)
class CurrentFeedback:
    """The current record as readers see it (store row with pending changes folded on top)."""
    id: str
    message_id: str
    user_id: str | None
    thumbs: str | None
    rating: int | None
    tags: list[str]
    comment: str | None
    correction: str | None
    created_at: datetime
    updated_at: datetime


def feedback_id_for(user_id: str | None, message_id: str) -> str:
    """The id a new record gets: derived from (user, message), so two changes racing to create
    the same record name it alike and the API can answer with the id before the store has it."""
    digest = hashlib.sha256(f"{user_id or ''}\x00{message_id}".encode()).hexdigest()[:32]
    return f"fb_{digest}"


def fold(current: CurrentFeedback | None, change: FeedbackRecord) -> CurrentFeedback:
    """`current` with `change` applied; a change older than the record's latest one was applied
    already (the store caught up while the reader looked) and changes nothing."""
    if current is not None and _aware(change.created_at) <= _aware(current.updated_at):
        return current
    if current is not None:
        current = replace(current, tags=list(current.tags or []))  # callers keep their copy
    else:
        current = CurrentFeedback(id=change.feedback_id or change.id, message_id=change.message_id,
                                  user_id=change.user_id, thumbs=None, rating=None, tags=[],
                                  comment=None, correction=None, created_at=change.created_at,
                                  updated_at=change.created_at)
    for name, value in change.values().items():
        setattr(current, name, list(value or []) if name == "tags" else value)
    current.updated_at = change.created_at
    return current


def fold_all(stored: list[CurrentFeedback], changes: list[FeedbackRecord]) -> list[CurrentFeedback]:
    """One message's records: `stored` ones with `changes` (oldest first) folded on, by user."""
    by_user: dict[str | None, CurrentFeedback] = {r.user_id: r for r in stored if r.user_id}
    others = [r for r in stored if not r.user_id]  # users deleted since: nothing folds onto these
    for change in changes:
        by_user[change.user_id] = fold(by_user.get(change.user_id), change)
    return others + sorted(by_user.values(), key=lambda r: _aware(r.created_at))


def _aware(moment: datetime) -> datetime:
    # SQLite hands timestamps back without a zone; everything here is UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)
