"""Queries of the annotation console: datasets, records (imported or taken from chats), the next
record for an annotator (task distribution), responses, progress and what agreement and export read.

Task distribution: a record is offered to an annotator while it has fewer than the dataset's
`min_submitted` submitted responses, the annotator has not answered or skipped it, and the record
does not come from the annotator's own chat. Among those, the record closest to done comes first
(then the oldest), so the overlap agreement needs builds up before new records are opened.
Nothing is reserved: two annotators asking at the same moment may both get a record that needs
one more response, and both responses count (a record can end with more than `min_submitted`).
Keyword-only, no HTTP knowledge; schemas arrive parsed (`app.annotation.questions`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.annotation.questions import Question, parse_questions
from app.store.annotation import AnnotationDataset, AnnotationRecord, AnnotationResponse
from app.store.base import new_id, utcnow
from app.store.models import User


class DatasetExists(ValueError):
    """An annotation dataset of this name already exists."""


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    id: str
    name: str
    guidelines: str
    questions: list[Question]
    min_submitted: int
    num_records: int
    created_by: str | None  # username
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewRecord:
    prompt: str
    answer: str
    candidates: list[dict] = field(default_factory=list)  # [{"id", "text"}]
    message_id: str | None = None  # the chat answer it shows (None: imported)
    author_id: str | None = None  # whose chat it is: never offered to them
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AnnotatorProgress:
    annotator: str  # username
    submitted: int
    discarded: int
    pending: int  # records this annotator may still be given
    answered_by_question: dict[str, int]  # question name -> submitted responses answering it


@dataclass(frozen=True, slots=True)
class DatasetProgress:
    num_records: int
    completed: int  # records with min_submitted submitted responses
    annotators: list[AnnotatorProgress]


def create_dataset(session: Session, *, name: str, guidelines: str, questions: list[Question],
                   min_submitted: int, created_by: str | None) -> DatasetInfo:
    if session.scalar(select(AnnotationDataset.id).where(AnnotationDataset.name == name)):
        raise DatasetExists(f"an annotation dataset named {name!r} already exists")
    row = AnnotationDataset(id=new_id("ads"), name=name, guidelines=guidelines,
                            questions=[q.to_dict() for q in questions], min_submitted=min_submitted,
                            created_by=created_by, created_at=utcnow())
    session.add(row)
    try:
        session.flush()
    except IntegrityError as e:  # another writer took the name since the check
        raise DatasetExists(f"an annotation dataset named {name!r} already exists") from e
    return _info(session, row)


def list_datasets(session: Session) -> list[DatasetInfo]:
    rows = session.scalars(select(AnnotationDataset).order_by(AnnotationDataset.name))
    return [_info(session, row) for row in rows]


def get_dataset(session: Session, *, name: str) -> DatasetInfo | None:
    row = session.scalar(select(AnnotationDataset).where(AnnotationDataset.name == name))
    return None if row is None else _info(session, row)


def add_records(session: Session, *, dataset_id: str, records: list[NewRecord]) -> int:
    """Append records in order; a chat answer already in the dataset is not added twice.
    Returns how many were added."""
    present = set(session.scalars(select(AnnotationRecord.message_id).where(
        AnnotationRecord.dataset_id == dataset_id, AnnotationRecord.message_id.is_not(None))))
    position = session.scalar(select(func.max(AnnotationRecord.position))
                              .where(AnnotationRecord.dataset_id == dataset_id))
    position = -1 if position is None else position
    added = 0
    for record in records:
        if record.message_id is not None and record.message_id in present:
            continue
        present.add(record.message_id)
        position += 1
        session.add(AnnotationRecord(
            id=new_id("rec"), dataset_id=dataset_id, position=position, message_id=record.message_id,
            author_id=record.author_id, prompt=record.prompt, answer=record.answer,
            candidates=list(record.candidates), meta=dict(record.meta), created_at=utcnow()))
        added += 1
    session.flush()
    return added


def get_record(session: Session, *, dataset_id: str, record_id: str) -> AnnotationRecord | None:
    record = session.get(AnnotationRecord, record_id)
    return record if record is not None and record.dataset_id == dataset_id else None


def _submitted_count():
    """Correlated count of a record's submitted responses."""
    return (select(func.count(AnnotationResponse.id))
            .where(AnnotationResponse.record_id == AnnotationRecord.id,
                   AnnotationResponse.status == "submitted").scalar_subquery())


def _open_for(dataset: DatasetInfo, annotator_id: str):
    """Conditions for a record of `dataset` that may be given to `annotator_id`."""
    answered = exists().where(AnnotationResponse.record_id == AnnotationRecord.id,
                              AnnotationResponse.annotator_id == annotator_id)
    return and_(AnnotationRecord.dataset_id == dataset.id, ~answered,
                or_(AnnotationRecord.author_id.is_(None), AnnotationRecord.author_id != annotator_id),
                _submitted_count() < dataset.min_submitted)


def next_record(session: Session, *, dataset: DatasetInfo, annotator_id: str) -> AnnotationRecord | None:
    """The record to show `annotator_id` next (see the module docstring), or None when done."""
    query = (select(AnnotationRecord).where(_open_for(dataset, annotator_id))
             .order_by(_submitted_count().desc(), AnnotationRecord.position).limit(1))
    return session.scalar(query)


def can_respond(record: AnnotationRecord, *, annotator_id: str) -> bool:
    """No one labels their own chats."""
    return record.author_id is None or record.author_id != annotator_id


def upsert_response(session: Session, *, record: AnnotationRecord, annotator_id: str, status: str,
                    values: dict) -> AnnotationResponse:
    """Create or replace this annotator's response to the record."""
    assert can_respond(record, annotator_id=annotator_id), "an author labels their own chat"
    row = session.scalar(select(AnnotationResponse).where(
        AnnotationResponse.record_id == record.id, AnnotationResponse.annotator_id == annotator_id))
    now = utcnow()
    if row is None:
        row = AnnotationResponse(id=new_id("rsp"), record_id=record.id, dataset_id=record.dataset_id,
                                 annotator_id=annotator_id, created_at=now)
        session.add(row)
    row.status, row.values, row.updated_at = status, dict(values), now
    session.flush()
    return row


def responses(session: Session, *, dataset_id: str,
              status: str | None = None) -> list[tuple[AnnotationResponse, str]]:
    """(response, annotator username) of the dataset, oldest first."""
    query = (select(AnnotationResponse, User.username)
             .join(User, AnnotationResponse.annotator_id == User.id)
             .where(AnnotationResponse.dataset_id == dataset_id)
             .order_by(AnnotationResponse.created_at, AnnotationResponse.id))
    if status is not None:
        query = query.where(AnnotationResponse.status == status)
    return [tuple(row) for row in session.execute(query)]


def records(session: Session, *, dataset_id: str) -> list[AnnotationRecord]:
    return list(session.scalars(select(AnnotationRecord).where(AnnotationRecord.dataset_id == dataset_id)
                                .order_by(AnnotationRecord.position)))


def progress(session: Session, *, dataset: DatasetInfo, include_ids: tuple[str, ...] = ()) -> DatasetProgress:
    """Per-annotator progress of everyone who answered, plus `include_ids` (the caller)."""
    completed = session.scalar(select(func.count(AnnotationRecord.id)).where(
        AnnotationRecord.dataset_id == dataset.id, _submitted_count() >= dataset.min_submitted))
    by_annotator: dict[str, dict] = {}
    rows = session.execute(select(AnnotationResponse, User.id, User.username)
                           .join(User, AnnotationResponse.annotator_id == User.id)
                           .where(AnnotationResponse.dataset_id == dataset.id))
    for response, user_id, username in rows:
        entry = by_annotator.setdefault(user_id, _empty_progress(username, dataset.questions))
        entry[response.status] += 1
        if response.status == "submitted":
            for name in response.values or {}:
                entry["answered_by_question"][name] = entry["answered_by_question"].get(name, 0) + 1
    for user_id in include_ids:
        if user_id not in by_annotator:
            username = session.scalar(select(User.username).where(User.id == user_id))
            if username is not None:
                by_annotator[user_id] = _empty_progress(username, dataset.questions)
    annotators = [AnnotatorProgress(annotator=e["username"], submitted=e["submitted"],
                                    discarded=e["discarded"], pending=_pending(session, dataset, uid),
                                    answered_by_question=e["answered_by_question"])
                  for uid, e in by_annotator.items()]
    return DatasetProgress(num_records=dataset.num_records, completed=completed or 0,
                           annotators=sorted(annotators, key=lambda a: a.annotator))


def _empty_progress(username: str, questions: list[Question]) -> dict:
    return {"username": username, "submitted": 0, "discarded": 0,
            "answered_by_question": {q.name: 0 for q in questions}}


def _pending(session: Session, dataset: DatasetInfo, annotator_id: str) -> int:
    return session.scalar(select(func.count(AnnotationRecord.id)).where(_open_for(dataset, annotator_id))) or 0


def _info(session: Session, row: AnnotationDataset) -> DatasetInfo:
    num_records = session.scalar(select(func.count(AnnotationRecord.id))
                                 .where(AnnotationRecord.dataset_id == row.id)) or 0
    username = None if row.created_by is None else session.scalar(
        select(User.username).where(User.id == row.created_by))
    created_at = row.created_at
    if created_at.tzinfo is None:  # SQLite hands back naive datetimes; the store writes UTC
        created_at = created_at.replace(tzinfo=timezone.utc)
    return DatasetInfo(id=row.id, name=row.name, guidelines=row.guidelines,
                       questions=parse_questions(row.questions), min_submitted=row.min_submitted,
                       num_records=num_records, created_by=username, created_at=created_at)
