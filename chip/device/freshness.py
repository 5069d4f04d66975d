"""When a cached CPU profile must be measured again.

A profile is a roof: the most this machine does. One measured while other processes held the
cores (the test suite, a pip install) is a low roof, and every MFU printed against it is too high;
reused forever, it stays wrong. So a cached profile is re-measured when it is older than a day,
when it records no measurement time (caches written before this rule), or when a quick probe now
beats it by more than 30% -- proof it was measured under load. A probe that falls short of it by
as much says the machine is busy now; re-measuring then would only lower the roof, so the cache
stays (and the caller hears why its figures may run below it). For the same reason a
re-measurement that falls that far short of the cache keeps the better of each figure (`settle`).
"""
from __future__ import annotations

import dataclasses

from shared import DeviceProfile

MAX_AGE_S = 24 * 3600
TOLERANCE = 0.30


@dataclasses.dataclass(frozen=True)
class Verdict:
    stale: bool
    reason: str  # why it is stale, or a note about a busy machine ("" when all agrees)


def figures(profile: DeviceProfile) -> dict[str, float]:
    """The numbers a probe can check: bandwidth (B/s) and each dtype's peak FLOP/s."""
    return {"memory_bandwidth": profile.memory_bandwidth,
            **{f"{dtype} FLOP/s": flops for dtype, flops in profile.peak_flops.items()}}


def judge(cached: DeviceProfile, now: float, probe: DeviceProfile | None = None,
          max_age_s: float = MAX_AGE_S, tolerance: float = TOLERANCE) -> Verdict:
    """Whether `cached` should be measured again at time `now`, given an optional fresh probe
    (only the figures both carry are compared)."""
    if cached.measured_at is None:
        return Verdict(True, "the cached profile records no measurement time")
    age = now - cached.measured_at
    if age > max_age_s or age < 0:
        return Verdict(True, f"the cached profile is {age / 3600:.1f} h old (limit "
                             f"{max_age_s / 3600:.0f} h)")
    if probe is None:
        return Verdict(False, "")
    old, new = figures(cached), figures(probe)
    common = [name for name in new if old.get(name)]
    faster = [f"{name} {new[name] / old[name] - 1:+.0%}" for name in common
              if new[name] > old[name] * (1 + tolerance)]
    if faster:
        return Verdict(True, "a quick probe beats the cached profile (" + ", ".join(faster)
                             + "): it was measured under load")
    slower = [f"{name} {new[name] / old[name] - 1:+.0%}" for name in common
              if new[name] < old[name] * (1 - tolerance)]
    if slower:
        return Verdict(False, "a quick probe falls short of the cached profile ("
                              + ", ".join(slower) + "): the machine is busy now; keeping the "
                              "cached roof")
    return Verdict(False, "")


def settle(cached: DeviceProfile | None, measured: DeviceProfile,
           tolerance: float = TOLERANCE) -> DeviceProfile:
    """What to cache after re-measuring: the new figures, unless some fall short of the old ones
    by more than `tolerance` -- other load now, not a slower machine (the key holds the CPU model)
    -- in which case each figure keeps the better of the two. A re-measurement under load must not
    lower the roof it was meant to correct."""
    if cached is None:
        return measured
    old, new = figures(cached), figures(measured)
    if any(new.get(name, 0.0) < value * (1 - tolerance) for name, value in old.items()):
        return dataclasses.replace(best_of([cached, measured]), measured_at=measured.measured_at)
    return measured


def best_of(profiles: list[DeviceProfile]) -> DeviceProfile:
    """One profile with the highest bandwidth and per-dtype FLOP/s of several runs (each run is
    disturbed differently by other load; the roof is the least disturbed). Facts from the first."""
    first = profiles[0]
    dtypes = {dtype for p in profiles for dtype in p.peak_flops}
    return dataclasses.replace(
        first, memory_bandwidth=max(p.memory_bandwidth for p in profiles),
        peak_flops={d: max(p.peak_flops.get(d, 0.0) for p in profiles) for d in sorted(dtypes)},
        measured_at=max((p.measured_at for p in profiles if p.measured_at is not None),
                        default=first.measured_at))
