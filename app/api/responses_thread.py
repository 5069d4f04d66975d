"""Response ids <-> stored answers, and the thread a `previous_response_id` continues.

A stored response is its assistant message: `resp_<hex>` names the message `msg_<hex>`, so no
extra table is needed and a response is continued, read back, given feedback and exported for
training like any chat answer. Lookups read the durable outbox first, then the store
(read-your-writes: an answer given a moment ago is found before the writer has stored it).

A response is visible to its conversation's owner (admins: any); anything else is a 404, so ids
of other users' responses cannot be probed.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.api.deps import AppState, Principal
from app.api.errors import APIError
from app.store import crud_chat, crud_threads

RESPONSE_PREFIX = "resp_"
MESSAGE_PREFIX = "msg_"


@dataclass(slots=True)
class ThreadMessage:
    id: str
    role: str
    content: str


@dataclass(slots=True)
class Thread:
    """The branch a new response continues: root first, the previous response's answer last."""
    conversation_id: str
    owner_id: str
    messages: list[ThreadMessage]

    @property
    def last_id(self) -> str:
        return self.messages[-1].id


@dataclass(slots=True)
class StoredAnswer:
    """A stored response as GET /v1/responses/{id} shows it."""
    message_id: str
    conversation_id: str
    content: str
    model_version: str | None
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    sampling_params: dict | None
    created_at: datetime | None


def response_id_of(message_id: str) -> str:
    return RESPONSE_PREFIX + message_id.removeprefix(MESSAGE_PREFIX)


def _message_id_of(response_id: str, param: str) -> str:
    if not response_id.startswith(RESPONSE_PREFIX):
        raise _missing(response_id, param)
    return MESSAGE_PREFIX + response_id.removeprefix(RESPONSE_PREFIX)


def load_thread(state: AppState, user: Principal, response_id: str) -> Thread:
    """The thread ending at response `response_id`; APIError 404 (param previous_response_id)
    when there is no such response of this user's. Blocking: call from a worker thread."""
    message_id = _message_id_of(response_id, "previous_response_id")
    tail: list[ThreadMessage] = []  # pending (outbox) messages, newest first
    conversation_id = owner_id = None
    current: str | None = message_id
    while current is not None and (pending := state.outbox.index.message(current)) is not None:
        r = pending.record
        tail.append(ThreadMessage(r.id, r.role, r.content))
        conversation_id, owner_id = pending.conversation_id, pending.owner_id
        current = r.parent_id
    head: list[ThreadMessage] = []
    if current is not None:  # the rest is in the store
        rows = _stored_thread(state, current)
        if not rows:
            raise _missing(response_id, "previous_response_id")
        head = [ThreadMessage(row.id, row.role, row.content) for row in rows]
        conversation_id = rows[-1].conversation_id
        owner_id = owner_id or _owner(state, conversation_id)
    thread = Thread(conversation_id, owner_id, head + tail[::-1])
    if thread.messages[-1].role != "assistant" or not _visible(state, user, thread):
        raise _missing(response_id, "previous_response_id")
    return thread


def load_answer(state: AppState, user: Principal, response_id: str) -> StoredAnswer:
    """The stored response `response_id`; APIError 404 (param response_id) when missing or not
    the user's. Blocking: call from a worker thread."""
    message_id = _message_id_of(response_id, "response_id")
    pending = state.outbox.index.message(message_id)
    if pending is not None:
        r = pending.record
        answer = StoredAnswer(r.id, pending.conversation_id, r.content, r.model_version,
                              r.finish_reason, r.prompt_tokens, r.completion_tokens,
                              r.sampling_params, pending.created_at)
        owner_id, role = pending.owner_id, r.role
    else:
        with state.store.session_factory() as session:
            row = crud_chat.get_message(session, message_id=message_id)
            if row is None:
                raise _missing(response_id, "response_id")
            answer = StoredAnswer(row.id, row.conversation_id, row.content, row.model_version,
                                  row.finish_reason, row.prompt_tokens, row.completion_tokens,
                                  row.sampling_params, row.created_at)
            owner_id, role = row.conversation.user_id, row.role
    if role != "assistant" or state.outbox.index.is_deleted(answer.conversation_id) or not (
            user.is_admin or owner_id == user.id):
        raise _missing(response_id, "response_id")
    return answer


def _stored_thread(state: AppState, message_id: str):
    with state.store.session_factory() as session:
        rows = crud_threads.message_thread(session, message_id=message_id)
        if not rows:  # the writer may have moved it from the outbox after this read began
            session.rollback()
            rows = crud_threads.message_thread(session, message_id=message_id)
        session.expunge_all()
        return rows


def _owner(state: AppState, conversation_id: str) -> str | None:
    with state.store.session_factory() as session:
        row = crud_chat.get_conversation(session, conversation_id=conversation_id, user_id=None)
        return row.user_id if row is not None else None


def _visible(state: AppState, user: Principal, thread: Thread) -> bool:
    if state.outbox.index.is_deleted(thread.conversation_id):
        return False
    return user.is_admin or thread.owner_id == user.id


def _missing(response_id: str, param: str) -> APIError:
    return APIError(404, f"No response found with id '{response_id[:80]}'.", param=param,
                    code="not_found")
