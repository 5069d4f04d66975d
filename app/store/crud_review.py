"""Queries behind the review console and dataset export: the feedback queue, sibling answers,
labels (one per annotator and message), and dataset snapshots. Keyword-only, no HTTP knowledge."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from app.review.export import ImplicitSignal, ReviewedAnswer, Snapshot, Verdict
from app.store.base import new_id, utcnow
from app.store.models import Feedback, Message, User
from app.store.review import VERDICTS, DatasetSnapshot, ReviewLabel

MAX_QUEUE_ITEMS = 200


@dataclass(slots=True)
class QueueFilters:
    thumbs: str | None = None
    rating: int | None = None
    tag: str | None = None
    model_version: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    reviewed: bool | None = None


def review_queue(session: Session, *, filters: QueueFilters) -> list[tuple[Feedback, Message, Message | None]]:
    """(feedback, answer, prompt message) rows, the records changed last first."""
    prompt = aliased(Message)
    query = (select(Feedback, Message, prompt).join(Message, Feedback.message_id == Message.id)
             .outerjoin(prompt, Message.parent_id == prompt.id).order_by(Feedback.updated_at.desc()))
    query = _filtered(query, filters, {
        "thumbs": lambda v: Feedback.thumbs == v, "rating": lambda v: Feedback.rating == v,
        "model_version": lambda v: Message.model_version == v,
        "since": lambda v: Feedback.created_at >= v, "until": lambda v: Feedback.created_at < v})
    rows = [tuple(r) for r in session.execute(query.limit(MAX_QUEUE_ITEMS * 5))]
    if filters.tag:  # tags are a JSON list: filtered here to stay portable across SQLite and PostgreSQL
        rows = [r for r in rows if filters.tag in (r[0].tags or [])]
    return rows[:MAX_QUEUE_ITEMS]


def implicit_queue(session: Session, *, signal: ImplicitSignal,
                   filters: QueueFilters) -> list[tuple[Message, Message | None]]:
    """(answer, prompt message) rows of answers with this implicit signal, newest first; the
    answer-level filters (model version, dates, reviewed) apply, the feedback-level ones cannot."""
    ids = [mid for mid, s in implicit_signals(session).items() if s is signal]
    prompt = aliased(Message)
    query = (select(Message, prompt).outerjoin(prompt, Message.parent_id == prompt.id)
             .where(Message.id.in_(ids)).order_by(Message.created_at.desc()))
    query = _filtered(query, filters, {
        "model_version": lambda v: Message.model_version == v,
        "since": lambda v: Message.created_at >= v, "until": lambda v: Message.created_at < v})
    return [tuple(r) for r in session.execute(query.limit(MAX_QUEUE_ITEMS))]


def _filtered(query, filters: QueueFilters, conditions: dict):
    """`query` narrowed by each set filter's condition, and by whether the answer is labelled."""
    for name, condition in conditions.items():
        if (value := getattr(filters, name)) is not None:
            query = query.where(condition(value))
    if filters.reviewed is not None:
        labelled = exists().where(ReviewLabel.message_id == Message.id)
        query = query.where(labelled if filters.reviewed else ~labelled)
    return query


def labels_for(session: Session, *, message_ids: list[str]) -> dict[str, list[tuple[ReviewLabel, str]]]:
    """message id -> [(label, annotator username)]."""
    query = (select(ReviewLabel, User.username).join(User, ReviewLabel.annotator_id == User.id)
             .where(ReviewLabel.message_id.in_(message_ids)).order_by(ReviewLabel.updated_at))
    result: dict[str, list[tuple[ReviewLabel, str]]] = {}
    for label, username in session.execute(query):
        result.setdefault(label.message_id, []).append((label, username))
    return result


def siblings(session: Session, *, message: Message) -> list[Message]:
    """Every assistant answer to the same user message, the given one included, oldest first."""
    if message.parent_id is None:
        return [message]
    query = (select(Message).where(Message.parent_id == message.parent_id, Message.role == "assistant")
             .order_by(Message.seq))
    return list(session.scalars(query))


def upsert_label(session: Session, *, message_id: str, annotator_id: str, verdict: str,
                 rewrite: str | None, preferred_message_id: str | None) -> ReviewLabel:
    """Create or replace this annotator's label of the message."""
    assert verdict in VERDICTS, verdict
    row = session.scalar(select(ReviewLabel).where(ReviewLabel.message_id == message_id,
                                                   ReviewLabel.annotator_id == annotator_id))
    now = utcnow()
    if row is None:
        row = ReviewLabel(id=new_id("lbl"), message_id=message_id, annotator_id=annotator_id, created_at=now)
        session.add(row)
    row.verdict, row.rewrite, row.preferred_message_id, row.updated_at = verdict, rewrite, preferred_message_id, now
    session.flush()
    return row


def all_labels(session: Session) -> list[ReviewLabel]:
    return list(session.scalars(select(ReviewLabel)))


def conversation_prefix(session: Session, *, message: Message) -> list[dict]:
    """The turns before `message` on its branch, root first, as [{role, content}]."""
    turns: list[dict] = []
    parent_id = message.parent_id
    while parent_id is not None:
        parent = session.get(Message, parent_id)
        if parent is None:
            break
        turns.append({"role": parent.role, "content": parent.content})
        parent_id = parent.parent_id
    return list(reversed(turns))


def implicit_signals(session: Session) -> dict[str, ImplicitSignal]:
    """answer id -> what its user did instead of rating it: stopped it (finish_reason "abort"),
    or asked to regenerate it (a later answer's sampling record names it in "regenerate_of")."""
    signals = {m: ImplicitSignal.STOPPED for m in session.scalars(
        select(Message.id).where(Message.role == "assistant", Message.finish_reason == "abort"))}
    sibling = aliased(Message)
    has_siblings = exists().where(sibling.parent_id == Message.parent_id, sibling.id != Message.id,
                                  sibling.role == "assistant")
    rows = session.execute(select(Message.sampling_params).where(
        Message.role == "assistant", Message.parent_id.is_not(None), has_siblings))
    for (params,) in rows:
        if isinstance(params, dict) and isinstance(params.get("regenerate_of"), str):
            signals[params["regenerate_of"]] = ImplicitSignal.REGENERATED
    return signals


def reviewed_answers(session: Session) -> list[ReviewedAnswer]:
    """Every assistant answer with feedback, labels or an implicit signal, with what the export
    needs to know."""
    implicit = implicit_signals(session)
    with_signal = (select(Feedback.message_id).union(select(ReviewLabel.message_id))).subquery()
    answers = session.scalars(select(Message).where(
        or_(Message.id.in_(select(with_signal)), Message.id.in_(list(implicit))),
        Message.role == "assistant"))
    items = []
    for answer in answers:
        feedback = sorted(answer.feedback, key=lambda f: f.updated_at)
        thumbs = next((f.thumbs for f in reversed(feedback) if f.thumbs), None)
        labels = session.scalars(select(ReviewLabel).where(ReviewLabel.message_id == answer.id))
        items.append(ReviewedAnswer(
            message_id=answer.id, prompt=conversation_prefix(session, message=answer), answer=answer.content,
            sibling_answers={m.id: m.content for m in siblings(session, message=answer) if m.id != answer.id},
            thumbs=thumbs, corrections=tuple(f.correction for f in feedback if f.correction),
            verdicts=tuple(Verdict(l.verdict, l.rewrite, l.preferred_message_id) for l in labels),
            completion=(answer.sampling_params or {}).get("endpoint") == "completions",
            implicit=implicit.get(answer.id)))
    return items


def create_snapshot(session: Session, *, snapshot: Snapshot, created_by: str | None) -> DatasetSnapshot:
    version = (session.scalar(select(func.max(DatasetSnapshot.version))) or 0) + 1
    row = DatasetSnapshot(id=new_id("ds"), version=version, content_hash=snapshot.content_hash,
                          counts=dict(snapshot.counts), sft_jsonl=snapshot.files["sft"],
                          dpo_jsonl=snapshot.files["dpo"], kto_jsonl=snapshot.files["kto"],
                          created_by=created_by, created_at=utcnow())
    session.add(row)
    session.flush()
    return row


def snapshot_with_hash(session: Session, *, content_hash: str) -> DatasetSnapshot | None:
    """The first snapshot with this content, if one was taken before."""
    return session.scalar(select(DatasetSnapshot).where(DatasetSnapshot.content_hash == content_hash)
                          .order_by(DatasetSnapshot.version))


def latest_ratings(session: Session) -> dict[str, int]:
    """message id -> its latest star rating (answers rated at least once), over the current
    records (one per user): the one changed last wins."""
    rows = session.execute(select(Feedback.message_id, Feedback.rating)
                           .where(Feedback.rating.is_not(None)).order_by(Feedback.updated_at))
    return {message_id: rating for message_id, rating in rows}


def list_snapshots(session: Session) -> list[DatasetSnapshot]:
    return list(session.scalars(select(DatasetSnapshot).order_by(DatasetSnapshot.version.desc())))


def get_snapshot(session: Session, *, snapshot_id: str) -> DatasetSnapshot | None:
    return session.get(DatasetSnapshot, snapshot_id)
