"""Chat history: decide where an exchange goes before generating, write it after.

`plan_*` runs before generation (ids are minted up front so every response and stream chunk can
carry them) and validates conversation / parent / regenerate ids against the store — waiting for
the background writer when an id is not there yet, since the previous answer may still be queued.
`record` hands the whole exchange to the background writer as one transaction.
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
from app.store.base import new_id
from app.store.crud_chat import ExchangeRecord, MessageRecord
from app.store.models import Message

_TITLE_CHARS = 80


@dataclass(slots=True)
class ExchangePlan:
    conversation_id: str
    create_conversation: bool
    title: str | None
    prior: list[MessageRecord]  # messages written before the answers (user turn(s))
    answer_parent_id: str | None
    message_ids: list[str] = field(default_factory=list)  # one per choice


async def plan_chat(state: AppState, user: Principal, *, messages: list[dict], n: int,
                    conversation_id: str | None, parent_message_id: str | None,
                    regenerate_of: str | None) -> ExchangePlan:
    plan = await asyncio.to_thread(_plan_chat, state, user, messages, conversation_id,
                                   parent_message_id, regenerate_of)
    plan.message_ids = [new_id("msg") for _ in range(n)]
    return plan


def plan_completion(prompt_text: str, n: int) -> ExchangePlan:
    user_message = MessageRecord(id=new_id("msg"), role="user", content=prompt_text, parent_id=None)
    return ExchangePlan(conversation_id=new_id("conv"), create_conversation=True,
                        title=_title(prompt_text), prior=[user_message],
                        answer_parent_id=user_message.id,
                        message_ids=[new_id("msg") for _ in range(n)])


def record(state: AppState, user: Principal, plan: ExchangePlan, run: GenerationRun,
           model: ServedModel, sampling: dict) -> None:
    """Queue the finished exchange for writing (never blocks on the database)."""
    final = run.final
    if final is None:
        return
    answers = [MessageRecord(
        id=plan.message_ids[o.index], role="assistant", content=o.text,
        parent_id=plan.answer_parent_id, model_version=model.id, sampling_params=sampling,
        engine_settings=model.engine_settings, finish_reason=o.finish_reason,
        prompt_tokens=len(final.prompt_token_ids), completion_tokens=len(o.token_ids),
        ttft_ms=_ms(run.ttft_s), latency_ms=_ms(run.latency_s))
        for o in sorted(final.outputs, key=lambda o: o.index)]
    exchange = ExchangeRecord(conversation_id=plan.conversation_id, user_id=user.id,
                              create_conversation=plan.create_conversation, title=plan.title,
                              model=model.id, messages=[*plan.prior, *answers])
    state.writer.submit(f"exchange {answers[0].id if answers else plan.conversation_id}",
                        lambda session: crud_chat.record_exchange(session, exchange=exchange))


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
    return _plan_new_conversation(messages)


def _plan_regeneration(state, session: Session, user: Principal, message_id: str,
                       conversation_id: str | None) -> ExchangePlan:
    original = _owned_message(state, session, user, message_id, "regenerate_of")
    if original.role != "assistant":
        raise APIError(400, "regenerate_of must name an assistant message", param="regenerate_of")
    if conversation_id and conversation_id != original.conversation_id:
        raise APIError(400, "regenerate_of belongs to another conversation", param="regenerate_of")
    return ExchangePlan(conversation_id=original.conversation_id, create_conversation=False,
                        title=None, prior=[], answer_parent_id=original.parent_id)


def _plan_continuation(state, session: Session, user: Principal, messages: list[dict],
                       conversation_id: str, parent_message_id: str | None) -> ExchangePlan:
    _find(state, session, lambda: crud_chat.get_conversation(session, conversation_id=conversation_id,
                                                    user_id=user.id),
          f"No conversation found with id '{conversation_id}'", "conversation_id")
    if parent_message_id:
        parent = _owned_message(state, session, user, parent_message_id, "parent_message_id")
        if parent.conversation_id != conversation_id:
            raise APIError(400, "parent_message_id belongs to another conversation",
                           param="parent_message_id")
        parent_id = parent.id
    else:
        parent_id = crud_chat.last_message_id(session, conversation_id=conversation_id)
    last = messages[-1]
    turn = MessageRecord(id=new_id("msg"), role=last["role"], content=last["content"],
                         parent_id=parent_id)
    return ExchangePlan(conversation_id=conversation_id, create_conversation=False, title=None,
                        prior=[turn], answer_parent_id=turn.id)


def _plan_new_conversation(messages: list[dict]) -> ExchangePlan:
    prior, parent_id = [], None
    for message in messages:
        record_ = MessageRecord(id=new_id("msg"), role=message["role"],
                                content=message["content"], parent_id=parent_id)
        prior.append(record_)
        parent_id = record_.id
    first_user = next((m["content"] for m in messages if m["role"] == "user"), messages[0]["content"])
    return ExchangePlan(conversation_id=new_id("conv"), create_conversation=True,
                        title=_title(first_user), prior=prior, answer_parent_id=parent_id)


def _owned_message(state, session: Session, user: Principal, message_id: str, param: str) -> Message:
    def lookup():
        message = crud_chat.get_message(session, message_id=message_id)
        if message is None or (message.conversation.user_id != user.id and not user.is_admin):
            return None
        return message
    return _find(state, session, lookup, f"No message found with id '{message_id}'", param)


def _find(state, session: Session, lookup, missing: str, param: str):
    found = lookup()
    if found is None:
        state.writer.flush(timeout_s=10.0)  # the row may still be in the writer's queue
        session.rollback()  # end the read snapshot taken before the writer committed
        found = lookup()
    if found is None:
        raise APIError(404, missing, param=param, code="not_found")
    return found


def _title(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "New conversation"
    return line[:_TITLE_CHARS]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0
