"""Conversations, messages and feedback as their owner sees them: the store's rows with the
outbox's pending writes on top (read-your-writes), without waiting for the store writer.

Pending records are snapshotted before the store is read: the writer removes a record from the
outbox only after the store committed it, so anything missing from the snapshot is in the store
read that follows (a record in both is shown once, by id).
"""
from __future__ import annotations

from datetime import datetime, timezone

from app.api.deps import AppState, Principal
from app.api.history import MessageRef, conversation_owner, find_message
from app.api.schemas.store import (ConversationDetail, ConversationPublic, FeedbackPublic,
                                   MessagePublic)
from app.store import crud_chat, crud_feedback
from app.store.feedback_change import CurrentFeedback, FeedbackRecord, fold_all
from app.store.pending import PendingConversation, PendingMessage

_RENAME_WAIT_S = 5.0  # how long a rename waits for the store writer to write the conversation


def read_conversation(state: AppState, conversation_id: str,
                      user: Principal) -> ConversationDetail | None:
    """The conversation with its messages and feedback; None when missing or not the user's
    (admins read any)."""
    index = state.outbox.index
    created = index.conversation(conversation_id)
    pending_messages = index.messages_of(conversation_id)
    pending_feedback = index.feedback_by_message()
    with state.store.session_factory() as session:
        row = crud_chat.get_conversation(session, conversation_id=conversation_id,
                                         user_id=None if user.is_admin else user.id,
                                         with_messages=True)
        detail = ConversationDetail.model_validate(row) if row is not None else None
    if index.is_deleted(conversation_id):
        return None
    if detail is None:
        if created is None or not (user.is_admin or created.user_id == user.id):
            return None
        detail = ConversationDetail(id=created.id, title=created.title, model=created.model,
                                    created_at=created.created_at, updated_at=created.updated_at,
                                    messages=[])
    return _with_pending(detail, pending_messages, pending_feedback)


def list_conversations(state: AppState, user: Principal, limit: int = 100,
                       search: str | None = None) -> list[ConversationPublic]:
    """The user's conversations, newest first; with `search`, those whose title or a message
    contains it, ignoring case (in the store and in what the outbox still holds)."""
    index = state.outbox.index
    created = [c for c in index.conversations_of(user.id) if _matches(c, search)]
    with state.store.session_factory() as session:
        rows = [ConversationPublic.model_validate(r)
                for r in crud_chat.list_conversations(session, user_id=user.id, limit=limit,
                                                      search=search)]
    stored_ids = {r.id for r in rows}
    rows += [ConversationPublic(id=c.id, title=c.title, model=c.model, created_at=c.created_at,
                                updated_at=c.updated_at) for c in created if c.id not in stored_ids]
    rows = [r for r in rows if not index.is_deleted(r.id)]
    return sorted(rows, key=lambda r: _aware(r.updated_at), reverse=True)[:limit]


def _matches(conversation: PendingConversation, search: str | None) -> bool:
    if not search:
        return True
    needle = search.casefold()
    texts = [conversation.title or "", *(m.record.content for m in conversation.messages)]
    return any(needle in text.casefold() for text in texts)


def rename_conversation(state: AppState, conversation_id: str, user: Principal,
                        title: str) -> ConversationPublic | None:
    """Retitle the user's conversation in the store; None when it is not theirs. A conversation
    the outbox has not written yet is waited for first (a rename has no outbox record of its
    own); TimeoutError when the writer is too far behind."""
    if state.outbox.index.conversation(conversation_id) is not None:
        if not state.outbox.wait_drained(state.outbox.last_seq, _RENAME_WAIT_S):
            raise TimeoutError(f"conversation {conversation_id} is not in the store yet")
    with state.store.session_factory.begin() as session:
        row = crud_chat.rename_conversation(session, conversation_id=conversation_id,
                                            user_id=user.id, title=title)
        return None if row is None else ConversationPublic.model_validate(row)


def feedback_target(state: AppState, message_id: str) -> MessageRef | None:
    """The message feedback is about (who may give it: `app.api.permissions`)."""
    with state.store.session_factory() as session:
        message = find_message(state, session, message_id)
        if message is None:
            session.rollback()  # the writer may have moved it since this read began
            message = find_message(state, session, message_id)
    return message


def user_feedback(state: AppState, message_id: str, user_id: str) -> CurrentFeedback | None:
    """The user's current feedback record on the message: the store's with pending changes on
    top (None: none yet). Call it in a worker thread."""
    pending = [c for c in state.outbox.index.feedback_of(message_id) if c.user_id == user_id]
    stored = []
    if state.outbox.index.message(message_id) is None:  # else the store cannot have feedback on it
        with state.store.session_factory() as session:
            row = crud_feedback.current_feedback(session, user_id=user_id, message_id=message_id)
            stored = [_current(FeedbackPublic.model_validate(row))] if row is not None else []
    folded = fold_all(stored, pending)
    return folded[0] if folded else None


def owned_conversation(state: AppState, conversation_id: str, user: Principal) -> bool:
    with state.store.session_factory() as session:
        return conversation_owner(state, session, conversation_id) == user.id


def _with_pending(detail: ConversationDetail, pending: list[PendingMessage],
                  feedback: dict[str, list[FeedbackRecord]]) -> ConversationDetail:
    known = {m.id for m in detail.messages}
    messages = detail.messages + [_message_public(p) for p in pending if p.record.id not in known]
    for message in messages:
        changes = feedback.get(message.id)
        if changes:  # one record per user: pending changes update the stored ones in place
            folded = fold_all([_current(f) for f in message.feedback], changes)
            message.feedback = [FeedbackPublic.model_validate(f) for f in folded]
    updated_at = max([_aware(detail.updated_at), *(_aware(p.created_at) for p in pending)])
    return detail.model_copy(update={"messages": messages, "updated_at": updated_at})


def _current(public: FeedbackPublic) -> CurrentFeedback:
    return CurrentFeedback(**public.model_dump(exclude={"updated_at"}),
                           updated_at=public.updated_at or public.created_at)


def _message_public(pending: PendingMessage) -> MessagePublic:
    r = pending.record
    return MessagePublic(id=r.id, parent_id=r.parent_id, role=r.role, content=r.content,
                         model_version=r.model_version, sampling_params=r.sampling_params,
                         engine_settings=r.engine_settings, finish_reason=r.finish_reason,
                         created_at=pending.created_at, ttft_ms=r.ttft_ms,
                         latency_ms=r.latency_ms, prompt_tokens=r.prompt_tokens,
                         completion_tokens=r.completion_tokens, feedback=[])


def _aware(moment: datetime) -> datetime:
    # SQLite hands timestamps back without a zone; everything here is UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)
