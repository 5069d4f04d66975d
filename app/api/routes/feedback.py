"""POST /v1/feedback: thumbs, rating, tags, comment or a corrected answer on one message.

Each user has one feedback record per message, and this is an upsert on it: the fields present
in the body replace the record's, absent ones keep theirs, an explicit null clears one. The
answer is the record as it stands after the change; every change is kept for audit.

The feedback goes to the durable outbox like answers do, so it works on an answer the store has
not received yet and survives a store outage. Once it is on disk the handler gives the writer up
to `history.VISIBLE_GRACE_S` to put it in the store too, so readers of the store alone (review
queue, reports) usually see it at once; a slow store costs at most that much, never more."""
from __future__ import annotations

import asyncio

from fastapi import APIRouter

from app.api import history
from app.api.deps import CurrentUser, StateDep
from app.api.errors import APIError
from app.api.history_view import feedback_target, user_feedback
from app.api.permissions import feedback_allowed
from app.api.schemas.store import FeedbackCreate, FeedbackPublic
from app.store.base import new_id, utcnow
from app.store.feedback_change import FeedbackRecord, feedback_id_for, fold

router = APIRouter(prefix="/v1/feedback", tags=["feedback"])


@router.post("", response_model=FeedbackPublic)
async def create_feedback(body: FeedbackCreate, state: StateDep, user: CurrentUser) -> FeedbackPublic:
    history.admit(state)
    target = await asyncio.to_thread(feedback_target, state, body.message_id)
    if target is None or not await asyncio.to_thread(feedback_allowed, state, target, user):
        raise APIError(404, f"No message found with id '{body.message_id}'",
                       param="message_id", code="not_found")
    current = await asyncio.to_thread(user_feedback, state, body.message_id, user.id)
    change = FeedbackRecord(
        id=new_id("fbc"), message_id=body.message_id, user_id=user.id, thumbs=body.thumbs,
        rating=body.rating, tags=list(body.tags), comment=body.comment,
        correction=body.correction, created_at=utcnow(), fields=body.changed_fields(),
        feedback_id=current.id if current else feedback_id_for(user.id, body.message_id))
    entry = await state.outbox.append_async(change)
    await state.outbox.applied(entry, history.VISIBLE_GRACE_S)  # for readers of the store
    return FeedbackPublic.model_validate(fold(current, change))
