"""The current user's conversations: list, create, read with messages and feedback, delete.

Reads include what the durable outbox still holds (read-your-writes); deletions go through it."""
from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response

from app.api import history, history_view
from app.api.deps import CurrentUser, SessionDep, StateDep
from app.api.errors import APIError
from app.api.history_view import list_conversations, owned_conversation
from app.api.schemas.store import (ConversationCreate, ConversationDetail, ConversationPublic,
                                   ConversationsPublic)
from app.store import crud_chat
from app.store.crud_chat import ConversationDeletion

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])


@router.get("", response_model=ConversationsPublic)
async def read_conversations(state: StateDep, user: CurrentUser) -> ConversationsPublic:
    return ConversationsPublic(data=await asyncio.to_thread(list_conversations, state, user))


@router.post("", response_model=ConversationPublic)
def create_conversation(body: ConversationCreate, session: SessionDep,
                        user: CurrentUser) -> ConversationPublic:
    row = crud_chat.create_conversation(session, user_id=user.id, title=body.title)
    return ConversationPublic.model_validate(row)


@router.get("/{conversation_id}", response_model=ConversationDetail)
async def read_conversation(conversation_id: str, state: StateDep,
                            user: CurrentUser) -> ConversationDetail:
    # Answers just given may still be in the outbox: they are read from there, never waited for.
    detail = await asyncio.to_thread(history_view.read_conversation, state, conversation_id, user)
    if detail is None:
        raise APIError(404, f"No conversation found with id '{conversation_id}'",
                       param="conversation_id", code="not_found")
    return detail


@router.delete("/{conversation_id}", status_code=204)
async def delete_conversation(conversation_id: str, state: StateDep, user: CurrentUser) -> Response:
    # Through the outbox, so it lands after any answer of the conversation still waiting there.
    if not await asyncio.to_thread(owned_conversation, state, conversation_id, user):
        raise APIError(404, f"No conversation found with id '{conversation_id}'",
                       param="conversation_id", code="not_found")
    history.admit(state)
    entry = await state.outbox.append_async(ConversationDeletion(conversation_id))
    await state.outbox.applied(entry, history.VISIBLE_GRACE_S)  # gone from the review queue too
    return Response(status_code=204)
