"""Report card: per (model version, device) time series of serving speed, utilization and
satisfaction, computed from stored answers (timings, token counts) and feedback.

Definitions (per time bucket):
- req_per_s: answers in the bucket / bucket length (average offered load).
- tokens_per_s: completion tokens / summed request latency (generation speed while serving).
- ttft_ms_p50/p99: time to first token; tpot_ms_p50/p99: (latency - TTFT) / (completion tokens - 1).
- mfu / mbu, averaged over answers: the engine's measured `mfu` / `mbu` when the answer's engine
  settings carry them; else estimated as 2 * num_params * (prompt + completion tokens) / latency /
  peak FLOP/s and weight bytes * completion tokens / latency / memory bandwidth (each decode step
  reads the weights once) from `num_params`, `weight_bytes`, `peak_flops`, `memory_bandwidth`;
  else None. Concurrent requests share steps, so the estimates are single-request figures.
- thumbs_up_rate: up / (up + down) of the bucket's feedback; feedback_count: all feedback items.
Percentiles use the nearest-rank method. No database access here.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.flywheel.runs import RunStatus


@dataclass(frozen=True, slots=True)
class AnswerTiming:
    created_at: datetime
    model_version: str
    device: str
    prompt_tokens: int | None
    completion_tokens: int | None
    ttft_ms: float | None
    latency_ms: float | None
    engine_settings: dict | None = None


@dataclass(frozen=True, slots=True)
class FeedbackEvent:
    created_at: datetime
    model_version: str
    device: str
    thumbs: str | None


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of `values`; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


def bucket_start(moment: datetime, bucket_s: int) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=moment.tzinfo)
    return epoch + timedelta(seconds=(int((moment - epoch).total_seconds()) // bucket_s) * bucket_s)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _utilization(answer: AnswerTiming) -> tuple[float | None, float | None]:
    settings = answer.engine_settings or {}
    if not answer.latency_ms or answer.latency_ms <= 0 or not answer.completion_tokens:
        return None, None
    seconds = answer.latency_ms / 1000.0
    tokens = (answer.prompt_tokens or 0) + answer.completion_tokens
    mfu, mbu = settings.get("mfu"), settings.get("mbu")
    if mfu is None and settings.get("num_params") and settings.get("peak_flops"):
        mfu = 2.0 * settings["num_params"] * tokens / seconds / settings["peak_flops"]
    if mbu is None and settings.get("weight_bytes") and settings.get("memory_bandwidth"):
        mbu = settings["weight_bytes"] * answer.completion_tokens / seconds / settings["memory_bandwidth"]
    return mfu, mbu


def _answer_metrics(answers: list[AnswerTiming], bucket_s: int) -> dict:
    timed = [a for a in answers if a.latency_ms and a.latency_ms > 0]
    ttfts = [a.ttft_ms for a in answers if a.ttft_ms is not None]
    tpots = [(a.latency_ms - a.ttft_ms) / (a.completion_tokens - 1) for a in timed
             if a.ttft_ms is not None and (a.completion_tokens or 0) > 1]
    utilization = [_utilization(a) for a in answers]
    latency_s = sum(a.latency_ms for a in timed) / 1000.0
    return {
        "requests": len(answers), "req_per_s": len(answers) / bucket_s,
        "tokens_per_s": sum(a.completion_tokens or 0 for a in timed) / latency_s if latency_s else None,
        "ttft_ms_p50": percentile(ttfts, 50), "ttft_ms_p99": percentile(ttfts, 99),
        "tpot_ms_p50": percentile(tpots, 50), "tpot_ms_p99": percentile(tpots, 99),
        "mfu": _mean([u for u, _ in utilization if u is not None]),
        "mbu": _mean([b for _, b in utilization if b is not None]),
    }


def _feedback_metrics(events: list[FeedbackEvent]) -> dict:
    up = sum(e.thumbs == "up" for e in events)
    down = sum(e.thumbs == "down" for e in events)
    return {"thumbs_up_rate": up / (up + down) if up + down else None, "feedback_count": len(events)}


def report_series(answers: list[AnswerTiming], feedback: list[FeedbackEvent], bucket_s: int) -> list[dict]:
    """[{model_version, device, points: [{t, requests, req_per_s, ..., feedback_count}]}]."""
    if bucket_s <= 0:
        raise ValueError(f"bucket_s must be positive, got {bucket_s}")
    answer_groups: dict[tuple, list[AnswerTiming]] = defaultdict(list)
    feedback_groups: dict[tuple, list[FeedbackEvent]] = defaultdict(list)
    for a in answers:
        answer_groups[(a.model_version, a.device, bucket_start(a.created_at, bucket_s))].append(a)
    for e in feedback:
        feedback_groups[(e.model_version, e.device, bucket_start(e.created_at, bucket_s))].append(e)
    series: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for key in sorted(set(answer_groups) | set(feedback_groups), key=lambda k: (k[0], k[1], k[2])):
        point = {"t": key[2].isoformat(), **_answer_metrics(answer_groups.get(key, []), bucket_s),
                 **_feedback_metrics(feedback_groups.get(key, []))}
        series[(key[0], key[1])].append(point)
    return [{"model_version": mv, "device": dev, "points": points} for (mv, dev), points in series.items()]


def report_summary(answers: list[AnswerTiming], feedback: list[FeedbackEvent], window_s: int) -> list[dict]:
    """One row per (model version, device) over the whole window, same definitions as the series."""
    answer_groups: dict[tuple, list[AnswerTiming]] = defaultdict(list)
    feedback_groups: dict[tuple, list[FeedbackEvent]] = defaultdict(list)
    for a in answers:
        answer_groups[(a.model_version, a.device)].append(a)
    for e in feedback:
        feedback_groups[(e.model_version, e.device)].append(e)
    return [{"model_version": key[0], "device": key[1],
             **_answer_metrics(answer_groups.get(key, []), window_s),
             **_feedback_metrics(feedback_groups.get(key, []))}
            for key in sorted(set(answer_groups) | set(feedback_groups))]


def count_iterations(runs: list[dict], since: datetime) -> int:
    """Flywheel iterations started since `since`: run records (`created_at` in epoch seconds) that
    did more than skip for lack of new feedback."""
    since_s = since.timestamp()
    return sum(1 for run in runs if run.get("created_at", 0) >= since_s and run.get("status") != RunStatus.SKIPPED)
