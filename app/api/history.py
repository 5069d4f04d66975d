"""Chat history: decide where an exchange goes before generating, keep it durably after.

`admit` turns a new chat away (503) while the outbox is full, before any work is done. `plan_*`
runs before generation (ids are minted up front so every response and stream chunk can carry
them) and validates conversation / parent / regenerate ids against what the outbox still holds
and then the store — so an answer given a moment ago is found without waiting for the writer.
`record` puts the whole exchange in the durable outbox and returns once it is on disk; the
responder sends an answer's last chunk only after that. A stopped answer is recorded too, with
the text it had and finish_reason "abort".
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from app.api.deps import AppState, Principal
from app.api.errors import APIError
from app.serving.generation import GenerationRun
from app.serving.model_host import ServedModel
from app.store import crud_chat
from app.store.base import new_id, utcnow
from app.store.crud_chat import ExchangeRecord, MessageRecord

_TITLE_CHARS = 80
_BACKLOG_RETRY_AFTER_S = 5
# How long feedback and deletes give the writer to reach the store before answering (awaited
# without a thread), so readers of the store alone usually see them at once.
VISIBLE_GRACE_S = 0.25


@dataclass(slots=True)
class ExchangePlan:
    conversation_id: str
    owner_id: str  # the conversation's owner (an admin may regenerate in someone else's)
    create_conversation: bool
    title: str | None
    prior: list[MessageRecord]  # messages written before the answers (user turn(s))
    answer_parent_id: str | None
    message_ids: list[str] = field(default_factory=list)  # one per choice


@dataclass(slots=True)
class MessageRef:
    """A message found in the outbox or the store: what plans and feedback need to know."""
    id: str
    conversation_id: str
    owner_id: str
    role: str
    parent_id: str | None


def admit(state: AppState) -> None:
    """Refuse new work while the outbox is full: its answer could not be kept."""
    if not state.outbox.has_room():
        raise APIError(503, f"The chat history store is behind ({state.outbox.depth} writes "
                            f"waiting); try again shortly.", code="store_backlog",
                       headers={"Retry-After": str(_BACKLOG_RETRY_AFTER_S)})


async def plan_chat(state: AppState, user: Principal, *, messages: list[dict], n: int,
                    conversation_id: str | None, parent_message_id: str | None,
                    regenerate_of: str | None) -> ExchangePlan:
    plan = await asyncio.to_thread(_plan_chat, state, user, messages, conversation_id,
                                   parent_message_id, regenerate_of)
    plan.message_ids = [new_id("msg") for _ in range(n)]
    return plan


def plan_completion(prompt_text: str, n: int, owner_id: str = "") -> ExchangePlan:
    user_message = MessageRecord(id=new_id("msg"), role="user", content=prompt_text, parent_id=None)
    return ExchangePlan(conversation_id=new_id("conv"), owner_id=owner_id,
                        create_conversation=True, title=_title(prompt_text), prior=[user_message],
                        answer_parent_id=user_message.id,
                        message_ids=[new_id("msg") for _ in range(n)])


async def record(state: AppState, user: Principal, plan: ExchangePlan, run: GenerationRun,
                 model: ServedModel, sampling: dict) -> None:
    """Put the exchange in the durable outbox; returns once it is on disk. Nothing to record
    when the engine produced no output at all (no id reached the client)."""
    results = run.results()
    if not results:
        return
    prompt_tokens = len(run.final.prompt_token_ids)
    answers = [MessageRecord(
        id=plan.message_ids[r.index], role="assistant", content=r.text,
        parent_id=plan.answer_parent_id, model_version=model.id, sampling_params=sampling,
        engine_settings=model.engine_settings, finish_reason=r.finish_reason,
        prompt_tokens=prompt_tokens, completion_tokens=r.num_tokens,
        ttft_ms=_ms(run.ttft_s), latency_ms=_ms(run.latency_s)) for r in results]
    exchange = ExchangeRecord(conversation_id=plan.conversation_id,
                              user_id=plan.owner_id or user.id,
                              create_conversation=plan.create_conversation, title=plan.title,
                              model=model.id, messages=[*plan.prior, *answers],
                              created_at=utcnow())
    await state.outbox.append_async(exchange)


def find_message(state: AppState, session: Session, message_id: str) -> MessageRef | None:
    """The message from the outbox (not yet written) or the store; None when it does not exist
    or its conversation is being deleted."""
    pending = state.outbox.index.message(message_id)
    if pending is not None:
        r = pending.record
        return MessageRef(r.id, pending.conversation_id, pending.owner_id, r.role, r.parent_id)
    row = crud_chat.get_message(session, message_id=message_id)
    if row is None or state.outbox.index.is_deleted(row.conversation_id):
        return None
    return MessageRef(row.id, row.conversation_id, row.conversation.user_id, row.role,
                      row.parent_id)


def conversation_owner(state: AppState, session: Session, conversation_id: str) -> str | None:
    """Who owns the conversation (outbox first, then store); None when there is none."""
    pending = state.outbox.index.conversation(conversation_id)
    if pending is not None:
        return pending.user_id
    row = crud_chat.get_conversation(session, conversation_id=conversation_id, user_id=None)
    if row is None or state.outbox.index.is_deleted(conversation_id):
        return None
    return row.user_id


def find(session: Session, lookup, missing: str, param: str):
    """`lookup()` or a 404. A miss is looked up once more in a fresh read: the writer may have
    moved the row from the outbox to the store after this session's snapshot began."""
    found = lookup()
    if found is None:
        session.rollback()  # end the read snapshot
        found = lookup()
    if found is None:
        raise APIError(404, missing, param=param, code="not_found")
    return found


def _plan_chat(state: AppState, user: Principal, messages: list[dict], conversation_id: str | None,
               parent_message_id: str | None, regenerate_of: str | None) -> ExchangePlan:
    with state.store.session_factory() as session:
        if regenerate_of:
            return _plan_regeneration(state, session, user, regenerate_of, conversation_id)
        if parent_message_id and not conversation_id:
            parent = _owned_message(state, session, user, parent_message_id, "parent_message_id")
            conversation_id = parent.conversation_id
        if conversation_id:
            return _plan_continuation(state, session, user, messages, conversation_id,
                                      parent_message_id)
    return _plan_new_conversation(user, messages)


def _plan_regeneration(state, session: Session, user: Principal, message_id: str,
                       conversation_id: str | None) -> ExchangePlan:
    original = _owned_message(state, session, user, message_id, "regenerate_of")
    if original.role != "assistant":
        raise APIError(400, "regenerate_of must name an assistant message", param="regenerate_of")
    if conversation_id and conversation_id != original.conversation_id:
        raise APIError(400, "regenerate_of belongs to another conversation", param="regenerate_of")
    return ExchangePlan(conversation_id=original.conversation_id, owner_id=original.owner_id,
                        create_conversation=False, title=None, prior=[],
                        answer_parent_id=original.parent_id)


def _plan_continuation(state, session: Session, user: Principal, messages: list[dict],
                       conversation_id: str, parent_message_id: str | None) -> ExchangePlan:
    def owned_conversation():
        return conversation_owner(state, session, conversation_id) == user.id or None
    find(session, owned_conversation, f"No conversation found with id '{conversation_id}'",
         "conversation_id")
    if parent_message_id:
        parent = _owned_message(state, session, user, parent_message_id, "parent_message_id")
        if parent.conversation_id != conversation_id:
            raise APIError(400, "parent_message_id belongs to another conversation",
                           param="parent_message_id")
        parent_id = parent.id
    else:
        parent_id = _last_message_id(state, session, conversation_id)
    turns = []
    for message in _new_turns(messages):
        turns.append(MessageRecord(id=new_id("msg"), role=message["role"],
                                   content=message["content"], parent_id=parent_id))
        parent_id = turns[-1].id
    return ExchangePlan(conversation_id=conversation_id, owner_id=user.id,
                        create_conversation=False, title=None, prior=turns,
                        answer_parent_id=parent_id)


def _new_turns(messages: list[dict]) -> list[dict]:
    """What a continuation adds before the answer: the last message, or all the tool results
    that end the history (an answer that called several tools gets one result each)."""
    count = 1
    while (messages[-1]["role"] == "tool" and count < len(messages)
           and messages[-count - 1]["role"] == "tool"):
        count += 1
    return messages[-count:]


def _plan_new_conversation(user: Principal, messages: list[dict]) -> ExchangePlan:
    prior, parent_id = [], None
    for message in messages:
        record_ = MessageRecord(id=new_id("msg"), role=message["role"],
                                content=message["content"], parent_id=parent_id)
        prior.append(record_)
        parent_id = record_.id
    first_user = next((m["content"] for m in messages if m["role"] == "user"), messages[0]["content"])
    return ExchangePlan(conversation_id=new_id("conv"), owner_id=user.id, create_conversation=True,
                        title=_title(first_user), prior=prior, answer_parent_id=parent_id)


def _last_message_id(state, session: Session, conversation_id: str) -> str | None:
    """Where a new turn attaches when no parent is given: the newest pending message (pending
    ones are newer than anything stored), else the store's last."""
    pending = state.outbox.index.messages_of(conversation_id)
    if pending:
        return pending[-1].record.id
    session.rollback()  # a snapshot from before the writer moved them would miss the newest
    return crud_chat.last_message_id(session, conversation_id=conversation_id)


def _owned_message(state, session: Session, user: Principal, message_id: str,
                   param: str) -> MessageRef:
    def lookup():
        message = find_message(state, session, message_id)
        if message is None or (message.owner_id != user.id and not user.is_admin):
            return None
        return message
    return find(session, lookup, f"No message found with id '{message_id}'", param)


def _title(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "New conversation"
    return line[:_TITLE_CHARS]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0
