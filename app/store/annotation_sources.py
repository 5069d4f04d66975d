"""Records for an annotation dataset taken from the chats: answers that got feedback (the review
queue's filters), or any assistant answers in a time window / of a model version.

Each record copies the conversation before the answer (the prompt), the answer, and every sibling
answer to the same prompt as ranking candidates (the answer first); `author_id` is the chat's
owner, who is never offered the record. Keyword-only, no HTTP knowledge.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.store import crud_review
from app.store.crud_annotation import NewRecord
from app.store.crud_review import QueueFilters
from app.store.models import Conversation, Message

MAX_RECORDS_PER_ADD = 1000


def prompt_text(turns: list[dict]) -> str:
    """The turns before an answer as one text: the user's message alone for a one-turn chat, else
    'role: content' paragraphs."""
    if len(turns) == 1:
        return turns[0]["content"]
    return "\n\n".join(f"{turn['role']}: {turn['content']}" for turn in turns)


def _record(session: Session, answer: Message, meta: dict) -> NewRecord:
    others = [m for m in crud_review.siblings(session, message=answer) if m.id != answer.id]
    candidates = [{"id": m.id, "text": m.content} for m in [answer, *others]] if others else []
    author_id = session.scalar(select(Conversation.user_id).where(Conversation.id == answer.conversation_id))
    return NewRecord(prompt=prompt_text(crud_review.conversation_prefix(session, message=answer)),
                     answer=answer.content, candidates=candidates, message_id=answer.id,
                     author_id=author_id,
                     meta={"model_version": answer.model_version, "conversation_id": answer.conversation_id,
                           **meta})


def records_from_feedback(session: Session, *, filters: QueueFilters,
                          limit: int = MAX_RECORDS_PER_ADD) -> list[NewRecord]:
    """One record per answer with feedback matching `filters`, oldest feedback first."""
    seen: dict[str, NewRecord] = {}
    for feedback, answer, _prompt in reversed(crud_review.review_queue(session, filters=filters)):
        if answer.id not in seen and len(seen) < limit:
            seen[answer.id] = _record(session, answer, {"source": "feedback", "thumbs": feedback.thumbs,
                                                        "rating": feedback.rating})
    return list(seen.values())


def records_from_messages(session: Session, *, filters: QueueFilters,
                          limit: int = MAX_RECORDS_PER_ADD) -> list[NewRecord]:
    """One record per assistant answer (model version and date filters apply), oldest first."""
    query = select(Message).where(Message.role == "assistant").order_by(Message.created_at, Message.seq)
    if filters.model_version is not None:
        query = query.where(Message.model_version == filters.model_version)
    if filters.since is not None:
        query = query.where(Message.created_at >= filters.since)
    if filters.until is not None:
        query = query.where(Message.created_at < filters.until)
    return [_record(session, answer, {"source": "messages"})
            for answer in session.scalars(query.limit(limit))]
