"""The current user's conversations: list (and search), create, read with messages and feedback,
rename, export as a file, delete.

Reads include what the durable outbox still holds (read-your-writes); deletions go through it."""
from __future__ import annotations

import asyncio

from fastapi import APIRouter, Query, Response

from app.api import history, history_view
from app.api.conversation_export import (ExportFormat, export_filename, export_json,
                                         export_markdown)
from app.api.deps import CurrentUser, SessionDep, StateDep
from app.api.errors import APIError
from app.api.history_view import list_conversations, owned_conversation
from app.api.schemas.store import (ConversationCreate, ConversationDetail, ConversationPublic,
                                   ConversationRename, ConversationsPublic)
from app.store import crud_chat
from app.store.crud_chat import ConversationDeletion

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])


@router.get("", response_model=ConversationsPublic)
async def read_conversations(state: StateDep, user: CurrentUser,
                             q: str | None = Query(default=None, max_length=256)) -> ConversationsPublic:
    """`q`: only conversations whose title or a message contains it (case-insensitive)."""
    search = (q or "").strip() or None
    return ConversationsPublic(data=await asyncio.to_thread(list_conversations, state, user,
                                                            search=search))


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


@router.patch("/{conversation_id}", response_model=ConversationPublic)
async def rename_conversation(conversation_id: str, body: ConversationRename, state: StateDep,
                              user: CurrentUser) -> ConversationPublic:
    if not await asyncio.to_thread(owned_conversation, state, conversation_id, user):
        raise _not_found(conversation_id)
    try:
        row = await asyncio.to_thread(history_view.rename_conversation, state, conversation_id,
                                      user, body.title)
    except TimeoutError as e:
        raise APIError(503, "The chat history store is behind; try the rename again shortly.",
                       code="store_backlog", headers={"Retry-After": "5"}) from e
    if row is None:
        raise _not_found(conversation_id)
    return row


@router.get("/{conversation_id}/export")
async def export_conversation(conversation_id: str, state: StateDep, user: CurrentUser,
                              fmt: ExportFormat = Query(ExportFormat.MARKDOWN, alias="format")
                              ) -> Response:
    """The conversation as a download: `md` (the newest thread, to read) or `json` (the tree)."""
    detail = None
    if await asyncio.to_thread(owned_conversation, state, conversation_id, user):  # owner only
        detail = await asyncio.to_thread(history_view.read_conversation, state, conversation_id, user)
    if detail is None:
        raise _not_found(conversation_id)
    body = export_markdown(detail) if fmt is ExportFormat.MARKDOWN else export_json(detail)
    disposition = f'attachment; filename="{export_filename(detail, fmt)}"'
    return Response(body, media_type=fmt.media_type,
                    headers={"Content-Disposition": disposition})


def _not_found(conversation_id: str) -> APIError:
    return APIError(404, f"No conversation found with id '{conversation_id}'",
                    param="conversation_id", code="not_found")
