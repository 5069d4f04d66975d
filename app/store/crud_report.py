"""Reads behind the report card: answer timings and feedback events since a moment."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.review.report_card import AnswerTiming, FeedbackEvent
from app.store.models import Feedback, Message


def _device(settings: dict | None) -> str:
    return str((settings or {}).get("device") or "unknown")


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def answer_timings(session: Session, *, since: datetime) -> list[AnswerTiming]:
    query = select(Message).where(Message.role == "assistant", Message.created_at >= since)
    return [AnswerTiming(created_at=_aware(m.created_at), model_version=m.model_version or "unknown",
                         device=_device(m.engine_settings), prompt_tokens=m.prompt_tokens,
                         completion_tokens=m.completion_tokens, ttft_ms=m.ttft_ms, latency_ms=m.latency_ms,
                         engine_settings=m.engine_settings)
            for m in session.scalars(query)]


def feedback_events(session: Session, *, since: datetime) -> list[FeedbackEvent]:
    query = (select(Feedback.created_at, Feedback.thumbs, Message.model_version, Message.engine_settings)
             .join(Message, Feedback.message_id == Message.id).where(Feedback.created_at >= since))
    return [FeedbackEvent(created_at=_aware(created), model_version=version or "unknown",
                          device=_device(settings), thumbs=thumbs)
            for created, thumbs, version, settings in session.execute(query)]

