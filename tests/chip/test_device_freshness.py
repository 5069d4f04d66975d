"""A cached CPU profile is re-measured when it is a day old, records no time, or a quick probe beats
it by more than 30% (it was measured under load); a probe that falls short keeps it (the machine is
busy now). The clock and the measurements are faked: nothing here is timed."""
from __future__ import annotations

import dataclasses
import json
import logging

import pytest

import chip.device as device
from chip.device import detect_profile
from chip.device.freshness import best_of, judge, settle
from shared import DeviceProfile

NOW = 1_800_000_000.0
HOUR = 3600.0


def profile(bandwidth=20e9, bf16=300e9, at=NOW - HOUR, **flops) -> DeviceProfile:
    return DeviceProfile(kind="cpu", name="fake", compute_units=2, memory_bytes=1 << 30,
                         memory_bandwidth=bandwidth, peak_flops={"bfloat16": bf16, **flops},
                         measured=True, measured_at=at)


def test_age_decides_before_any_probe():
    assert not judge(profile(at=NOW - 23 * HOUR), NOW).stale
    old = judge(profile(at=NOW - 25 * HOUR), NOW)
    assert old.stale and "25.0 h old" in old.reason
    assert judge(profile(at=NOW + HOUR), NOW).stale  # written "in the future": the clock moved
    legacy = judge(dataclasses.replace(profile(), measured_at=None), NOW)
    assert legacy.stale and "no measurement time" in legacy.reason


def test_a_probe_beating_the_cache_by_more_than_30_percent_means_it_was_measured_under_load():
    cached = profile(bandwidth=14e9, bf16=95e9)
    verdict = judge(cached, NOW, profile(bandwidth=30e9, bf16=120e9))
    assert verdict.stale
    assert "memory_bandwidth +114%" in verdict.reason and "under load" in verdict.reason
    assert "bfloat16" not in verdict.reason  # +26%: within tolerance
    assert not judge(cached, NOW, profile(bandwidth=18e9, bf16=120e9)).stale


def test_a_probe_falling_short_keeps_the_cached_roof_and_says_the_machine_is_busy():
    verdict = judge(profile(bf16=400e9), NOW, profile(bf16=137e9))
    assert not verdict.stale and "busy now" in verdict.reason
    assert "bfloat16 FLOP/s -66%" in verdict.reason
    agrees = judge(profile(), NOW, profile(bandwidth=19e9, bf16=310e9))
    assert (agrees.stale, agrees.reason) == (False, "")


def test_best_of_takes_each_figure_from_the_least_disturbed_run():
    best = best_of([profile(bandwidth=10e9, bf16=300e9, float32=50e9, at=NOW - 2),
                    profile(bandwidth=25e9, bf16=100e9, at=NOW - 1)])
    assert (best.memory_bandwidth, best.peak_flops) == (25e9, {"bfloat16": 300e9, "float32": 50e9})
    assert best.measured_at == NOW - 1


def test_a_remeasurement_under_load_does_not_lower_the_roof():
    cached = profile(bandwidth=30e9, bf16=405e9, float32=91e9, at=NOW - 30 * HOUR)
    busy = profile(bandwidth=16e9, bf16=58e9, float32=80e9, at=NOW)
    kept = settle(cached, busy)
    assert (kept.memory_bandwidth, kept.peak_flops) == (30e9, {"bfloat16": 405e9, "float32": 91e9})
    assert kept.measured_at == NOW  # measured again now: not stale tomorrow morning
    close = profile(bandwidth=27e9, bf16=380e9, float32=85e9, at=NOW)
    assert settle(cached, close) == close  # within 30%: the new figures stand
    assert settle(None, busy) == busy


@pytest.fixture
def fake_machine(monkeypatch):
    """measure_cpu_profile and quick_probe replaced by figures the test sets; calls recorded."""
    state = {"measure": profile(bandwidth=30e9, bf16=400e9, at=NOW), "probe": None, "calls": []}

    def measure():
        state["calls"].append("measure")
        return state["measure"]

    def probe():
        state["calls"].append("probe")
        return state["probe"]

    monkeypatch.setattr(device, "measure_cpu_profile", measure)
    monkeypatch.setattr(device, "quick_probe", probe)
    monkeypatch.setattr(device.time, "time", lambda: NOW)
    return state


def write_cache(tmp_path, cached: DeviceProfile) -> None:
    key = device.cpu_cache_key()
    device.cache_path(tmp_path, key).write_text(
        json.dumps({"key": key, "profile": dataclasses.asdict(cached)}))


def test_detect_profile_remeasures_a_day_old_cache_and_a_loaded_one_only_when_verifying(
        tmp_path, fake_machine, caplog):
    write_cache(tmp_path, profile(bandwidth=14e9, bf16=95e9, at=NOW - HOUR))
    fake_machine["probe"] = profile(bandwidth=28e9, bf16=380e9, at=NOW)
    assert detect_profile("cpu", cache_dir=tmp_path).peak_flops["bfloat16"] == 95e9
    assert fake_machine["calls"] == []  # no probe unless asked: engine start-up stays cheap
    with caplog.at_level(logging.INFO, logger="chip.device"):
        fresh = detect_profile("cpu", cache_dir=tmp_path, verify=True)
    assert fake_machine["calls"] == ["probe", "measure"] and "under load" in caplog.text
    assert fresh.peak_flops["bfloat16"] == 400e9 and fresh.measured_at == NOW
    # the new figures were cached: read back without measuring
    assert detect_profile("cpu", cache_dir=tmp_path) == fresh and len(fake_machine["calls"]) == 2

    write_cache(tmp_path, profile(at=NOW - 30 * HOUR))
    assert detect_profile("cpu", cache_dir=tmp_path).measured_at == NOW
    assert fake_machine["calls"][-1] == "measure"


def test_detect_profile_keeps_the_cache_when_the_probe_runs_slow(tmp_path, fake_machine, caplog):
    cached = profile(bandwidth=30e9, bf16=400e9, at=NOW - HOUR)
    write_cache(tmp_path, cached)
    fake_machine["probe"] = profile(bandwidth=10e9, bf16=137e9, at=NOW)
    with caplog.at_level(logging.WARNING, logger="chip.device"):
        assert detect_profile("cpu", cache_dir=tmp_path, verify=True) == cached
    assert fake_machine["calls"] == ["probe"] and "busy now" in caplog.text
