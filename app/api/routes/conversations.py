"""The current user's conversations: list, create, read with messages and feedback, delete."""
from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response

from app.api.deps import CurrentUser, SessionDep, StateDep
from app.api.errors import APIError
from app.api.schemas.store import (ConversationCreate, ConversationDetail, ConversationPublic,
                                   ConversationsPublic)
from app.store import crud_chat

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])


@router.get("", response_model=ConversationsPublic)
def read_conversations(session: SessionDep, user: CurrentUser) -> ConversationsPublic:
    rows = crud_chat.list_conversations(session, user_id=user.id)
    return ConversationsPublic(data=[ConversationPublic.model_validate(r) for r in rows])


@router.post("", response_model=ConversationPublic)
def create_conversation(body: ConversationCreate, session: SessionDep,
                        user: CurrentUser) -> ConversationPublic:
    row = crud_chat.create_conversation(session, user_id=user.id, title=body.title)
    return ConversationPublic.model_validate(row)


@router.get("/{conversation_id}", response_model=ConversationDetail)
async def read_conversation(conversation_id: str, state: StateDep,
                            user: CurrentUser) -> ConversationDetail:
    # Answers just streamed may still be queued for writing: wait for them, then read.
    await asyncio.to_thread(state.writer.flush, 10.0)
    return await asyncio.to_thread(_read_detail, state, conversation_id, user)


def _read_detail(state, conversation_id: str, user) -> ConversationDetail:
    with state.store.session_factory() as session:
        row = crud_chat.get_conversation(session, conversation_id=conversation_id,
                                         user_id=None if user.is_admin else user.id,
                                         with_messages=True)
        if row is None:
            raise APIError(404, f"No conversation found with id '{conversation_id}'",
                           param="conversation_id", code="not_found")
        return ConversationDetail.model_validate(row)


@router.delete("/{conversation_id}", status_code=204)
def delete_conversation(conversation_id: str, session: SessionDep, user: CurrentUser) -> Response:
    row = crud_chat.get_conversation(session, conversation_id=conversation_id, user_id=user.id)
    if row is None:
        raise APIError(404, f"No conversation found with id '{conversation_id}'",
                       param="conversation_id", code="not_found")
    crud_chat.delete_conversation(session, conversation=row)
    return Response(status_code=204)
