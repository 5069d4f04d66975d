"""POST /v1/feedback: thumbs, rating, tags, comment or a corrected answer on one message."""
from __future__ import annotations

import asyncio

from fastapi import APIRouter

from app.api.deps import CurrentUser, StateDep
from app.api.errors import APIError
from app.api.permissions import may_give_feedback
from app.api.schemas.store import FeedbackCreate, FeedbackPublic
from app.store import crud_chat

router = APIRouter(prefix="/v1/feedback", tags=["feedback"])


@router.post("", response_model=FeedbackPublic)
async def create_feedback(body: FeedbackCreate, state: StateDep, user: CurrentUser) -> FeedbackPublic:
    # The message may have been answered a moment ago and still be queued for writing.
    await asyncio.to_thread(state.writer.flush, 10.0)
    return await asyncio.to_thread(_create, state, body, user)


def _create(state, body: FeedbackCreate, user) -> FeedbackPublic:
    with state.store.transaction() as session:
        message = crud_chat.get_message(session, message_id=body.message_id)
        if message is None or not may_give_feedback(user, owner_id=message.conversation.user_id,
                                                    in_review_scope=bool(message.feedback)):
            raise APIError(404, f"No message found with id '{body.message_id}'",
                           param="message_id", code="not_found")
        row = crud_chat.create_feedback(session, message_id=message.id, user_id=user.id,
                                        thumbs=body.thumbs, rating=body.rating, tags=body.tags,
                                        comment=body.comment, correction=body.correction)
        return FeedbackPublic.model_validate(row)
