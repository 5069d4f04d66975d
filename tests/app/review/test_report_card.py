"""Report card aggregation against hand-computed numbers."""
from datetime import datetime, timezone

import pytest

from app.review.report_card import (AnswerTiming, FeedbackEvent, count_iterations, percentile, report_series,
                                     report_summary)

T0 = datetime(2026, 11, 28, 10, 5, tzinfo=timezone.utc)
T1 = datetime(2026, 11, 28, 11, 30, tzinfo=timezone.utc)
SETTINGS = {"device": "cpu", "num_params": 1000, "peak_flops": 1e6, "weight_bytes": 4000,
            "memory_bandwidth": 1e6}


def test_nearest_rank_percentile():
    values = [15, 20, 35, 40, 50]
    assert percentile(values, 50) == 35 and percentile(values, 99) == 50 and percentile(values, 1) == 15
    assert percentile([], 50) is None


def test_series_per_version_and_hour():
    answers = [
        AnswerTiming(T0, "v1", "cpu", 10, 11, 100.0, 1100.0, SETTINGS),  # tpot (1100-100)/10 = 100
        AnswerTiming(T0, "v1", "cpu", 10, 5, 300.0, 1300.0, SETTINGS),  # tpot 1000/4 = 250
        AnswerTiming(T1, "v1", "cpu", 2, 1, 50.0, 50.0, None),  # no tpot, no utilization
        AnswerTiming(T0, "v2", "cpu", 1, 3, 10.0, 30.0, {"mfu": 0.2, "mbu": 0.5}),  # measured by the engine
        AnswerTiming(T0, "v2", "cpu", 1, 3, 10.0, 30.0, {"mfu": 0.4, "mbu": 0.7}),
    ]
    feedback = [FeedbackEvent(T0, "v1", "cpu", "up"), FeedbackEvent(T0, "v1", "cpu", "down"),
                FeedbackEvent(T0, "v1", "cpu", "up"), FeedbackEvent(T0, "v1", "cpu", None)]
    series = {s["model_version"]: s for s in report_series(answers, feedback, bucket_s=3600)}
    first, second = series["v1"]["points"]
    assert first["t"] == "2026-11-28T10:00:00+00:00" and second["t"] == "2026-11-28T11:00:00+00:00"
    assert first["requests"] == 2 and first["req_per_s"] == pytest.approx(2 / 3600)
    assert first["tokens_per_s"] == pytest.approx(16 / 2.4)
    assert (first["ttft_ms_p50"], first["ttft_ms_p99"]) == (100.0, 300.0)
    assert (first["tpot_ms_p50"], first["tpot_ms_p99"]) == (100.0, 250.0)
    # mfu: 2*1000*21/1.1/1e6 and 2*1000*15/1.3/1e6, averaged; mbu: 4000*11/1.1/1e6 and 4000*5/1.3/1e6
    assert first["mfu"] == pytest.approx((2000 * 21 / 1.1 + 2000 * 15 / 1.3) / 2 / 1e6)
    assert first["mbu"] == pytest.approx((4000 * 11 / 1.1 + 4000 * 5 / 1.3) / 2 / 1e6)
    assert first["thumbs_up_rate"] == pytest.approx(2 / 3) and first["feedback_count"] == 4
    assert second["tpot_ms_p50"] is None and second["mfu"] is None and second["thumbs_up_rate"] is None
    v2 = series["v2"]["points"][0]
    assert v2["tokens_per_s"] == pytest.approx(6 / 0.06)
    assert (v2["mfu"], v2["mbu"]) == (pytest.approx(0.3), pytest.approx(0.6))


def test_bad_bucket_is_rejected():
    with pytest.raises(ValueError, match="bucket_s"):
        report_series([], [], bucket_s=0)


def test_iterations_count_runs_in_the_window_that_did_not_skip():
    runs = [{"created_at": T0.timestamp(), "status": "promoted"}, {"created_at": T1.timestamp(), "status": "skipped"},
            {"created_at": T1.timestamp(), "status": "rejected"}, {"created_at": T0.timestamp() - 1, "status": "failed"}]
    assert count_iterations(runs, T0) == 2


def test_summary_covers_the_whole_window_per_version():
    answers = [AnswerTiming(T0, "v1", "cpu", 1, 11, 100.0, 1100.0), AnswerTiming(T1, "v1", "cpu", 1, 5, 300.0, 1300.0)]
    feedback = [FeedbackEvent(T1, "v1", "cpu", "up"), FeedbackEvent(T1, "v2", "cpu", "down")]
    rows = {r["model_version"]: r for r in report_summary(answers, feedback, window_s=86400)}
    assert rows["v1"]["requests"] == 2 and rows["v1"]["req_per_s"] == pytest.approx(2 / 86400)
    assert (rows["v1"]["tpot_ms_p50"], rows["v1"]["tpot_ms_p99"]) == (100.0, 250.0)
    assert rows["v1"]["thumbs_up_rate"] == 1.0 and rows["v2"]["requests"] == 0
    assert rows["v2"]["thumbs_up_rate"] == 0.0 and rows["v2"]["tokens_per_s"] is None
