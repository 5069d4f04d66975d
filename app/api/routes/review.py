"""Review console API (annotators and admins): the feedback queue, sibling answers, labels and
inter-annotator agreement."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from app.api.deps import AnnotatorUser, SessionDep
from app.api.errors import APIError
from app.review.agreement import Label, agreement
from app.review.export import ImplicitSignal
from app.store import crud_review
from app.store.models import Message

router = APIRouter(prefix="/v1/review", tags=["review"])


class LabelCreate(BaseModel):
    message_id: str
    verdict: Literal["accept", "reject", "rewrite"]
    rewrite: str | None = Field(default=None, max_length=100_000)
    preferred_message_id: str | None = None


def _utc(value: datetime | None) -> datetime | None:
    """Query bounds in UTC, the store's clock; a naive bound is taken to be UTC already."""
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _label_public(label, username: str) -> dict:
    return {"id": label.id, "message_id": label.message_id, "annotator": username, "verdict": label.verdict,
            "rewrite": label.rewrite, "preferred_message_id": label.preferred_message_id,
            "created_at": label.updated_at.isoformat()}


@router.get("/queue")
def read_queue(session: SessionDep, _user: AnnotatorUser, thumbs: Literal["up", "down"] | None = None,
               rating: int | None = Query(default=None, ge=1, le=5), tag: str | None = None,
               model_version: str | None = None, since: datetime | None = None,
               until: datetime | None = None, reviewed: bool | None = None,
               signal: Literal["regenerated", "stopped"] | None = None) -> dict:
    """Feedback items, newest first; with `signal`, answers users regenerated or stopped instead
    (implicit negatives, without a feedback item of their own)."""
    filters = crud_review.QueueFilters(thumbs=thumbs, rating=rating, tag=tag or None,
                                       model_version=model_version or None, since=_utc(since),
                                       until=_utc(until), reviewed=reviewed)
    if signal is not None:
        return _implicit_queue(session, ImplicitSignal(signal), filters)
    rows = crud_review.review_queue(session, filters=filters)
    labels = crud_review.labels_for(session, message_ids=[answer.id for _, answer, _ in rows])
    return {"object": "list", "data": [{
        "feedback_id": fb.id, "message_id": answer.id, "conversation_id": answer.conversation_id,
        "prompt": prompt.content if prompt is not None else "", "answer": answer.content,
        "thumbs": fb.thumbs, "rating": fb.rating, "tags": fb.tags or [], "comment": fb.comment,
        "correction": fb.correction, "model_version": answer.model_version,
        "created_at": fb.created_at.isoformat(),
        "labels": [_label_public(label, name) for label, name in labels.get(answer.id, [])],
    } for fb, answer, prompt in rows]}


def _implicit_queue(session, signal: ImplicitSignal, filters) -> dict:
    rows = crud_review.implicit_queue(session, signal=signal, filters=filters)
    labels = crud_review.labels_for(session, message_ids=[answer.id for answer, _ in rows])
    return {"object": "list", "data": [{
        "feedback_id": None, "message_id": answer.id, "conversation_id": answer.conversation_id,
        "prompt": prompt.content if prompt is not None else "", "answer": answer.content,
        "thumbs": None, "rating": None, "tags": [], "comment": None, "correction": None,
        "signal": signal.value, "model_version": answer.model_version,
        "created_at": answer.created_at.isoformat(),
        "labels": [_label_public(label, name) for label, name in labels.get(answer.id, [])],
    } for answer, prompt in rows]}


@router.get("/siblings/{message_id}")
def read_siblings(message_id: str, session: SessionDep, _user: AnnotatorUser) -> dict:
    message = session.get(Message, message_id)
    if message is None or message.role != "assistant":
        raise APIError(404, f"No assistant message '{message_id}'.", param="message_id")
    return {"object": "list", "data": [
        {"id": m.id, "parent_id": m.parent_id, "content": m.content, "model_version": m.model_version,
         "created_at": m.created_at.isoformat()} for m in crud_review.siblings(session, message=message)]}


@router.post("/labels")
def create_label(body: LabelCreate, session: SessionDep, user: AnnotatorUser) -> dict:
    message = session.get(Message, body.message_id)
    if message is None or message.role != "assistant":
        raise APIError(404, f"No assistant message '{body.message_id}'.", param="message_id")
    if body.verdict == "rewrite" and not (body.rewrite or "").strip():
        raise APIError(400, "A 'rewrite' verdict needs the rewritten answer in 'rewrite'.", param="rewrite")
    if body.preferred_message_id is not None and body.preferred_message_id not in {
            m.id for m in crud_review.siblings(session, message=message)}:
        raise APIError(400, "preferred_message_id must be a sibling answer of message_id.",
                       param="preferred_message_id")
    label = crud_review.upsert_label(session, message_id=message.id, annotator_id=user.id,
                                     verdict=body.verdict, rewrite=body.rewrite,
                                     preferred_message_id=body.preferred_message_id)
    return _label_public(label, user.username)


@router.get("/agreement")
def read_agreement(session: SessionDep, _user: AnnotatorUser) -> dict:
    labels = [Label(row.message_id, row.annotator_id, row.verdict) for row in crud_review.all_labels(session)]
    result = agreement(labels)
    return {"items_with_overlap": result.items_with_overlap, "percent_agreement": result.percent_agreement,
            "cohens_kappa": result.cohens_kappa}
