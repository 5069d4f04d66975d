"""Report card API: per model version and device, serving speed, utilization and satisfaction over
time (definitions in `app.review.report_card`), plus flywheel iterations in the window.

Annotators and admins only: the totals span every user's traffic and feedback, which a plain user
must not read (reviewers already see all feedback in the review queue, so this adds nothing to
what they can learn)."""
from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Query

from app.api.deps import AnnotatorUser, SessionDep, StateDep
from app.flywheel.runs import open_runs
from app.review.report_card import count_iterations, report_series, report_summary
from app.store import crud_report
from app.store.base import utcnow

router = APIRouter(prefix="/v1/report", tags=["report"])

HOUR_S, DAY_S = 3600, 86400


@router.get("")
def read_report(state: StateDep, session: SessionDep, _user: AnnotatorUser,
                days: int = Query(default=30, ge=1, le=365),
                bucket: str | None = Query(default=None, pattern="^(hour|day)$")) -> dict:
    bucket = bucket or ("hour" if days <= 7 else "day")
    bucket_s = HOUR_S if bucket == "hour" else DAY_S
    since = utcnow() - timedelta(days=days)
    answers = crud_report.answer_timings(session, since=since)
    feedback = crud_report.feedback_events(session, since=since)
    return {"object": "report", "days": days, "bucket": bucket, "since": since.isoformat(),
            "totals": {"requests": len(answers), "feedback": len(feedback)},
            "iterations": count_iterations(
                open_runs(state.settings.data, engine=state.store.engine).list(), since),
            "summary": report_summary(answers, feedback, days * DAY_S),
            "series": report_series(answers, feedback, bucket_s)}
