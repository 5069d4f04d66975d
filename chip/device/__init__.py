"""Device profiles: what this machine can do, measured once (CPU) or looked up (GPU), cached on disk.

`detect_profile()` is the one entry point. The profile is a plain `shared.DeviceProfile`; nothing
here is queried at import time.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from pathlib import Path

from shared import DeviceProfile

from chip.device import cpu_info, freshness

logger = logging.getLogger(__name__)

CACHE_ENV = "FLYWHEEL_CACHE_DIR"


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "flywheel")


def detect_profile(device: str = "auto", cache_dir: str | os.PathLike | None = None,
                   refresh: bool = False, verify: bool = False) -> DeviceProfile:
    """The profile of `device` ('auto', 'cpu', 'cuda', 'cuda:1').

    CPU profiles are measured (best of a few short runs, ~5 s) the first time and then read from
    `<cache_dir>/device-profile-<key>.json`, keyed by CPU model, torch thread count and torch version;
    a cached one older than a day is measured again (`chip.device.freshness`), and so is one that
    `verify=True`'s quick probe (~0.3 s) beats by more than 30% (it was measured under load);
    `refresh=True` measures again. GPU profiles come from the datasheet table and are not cached.
    """
    import torch

    kind, _, index = str(device).partition(":")
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but torch sees no CUDA device")
        from chip.device.cuda import detect_cuda_profile

        return detect_cuda_profile(int(index or 0))
    if kind != "cpu":
        raise ValueError(f"unknown device {device!r}; expected 'auto', 'cpu' or 'cuda[:N]'")
    return _cached_cpu_profile(Path(cache_dir) if cache_dir else default_cache_dir(), refresh,
                               verify)


def cpu_cache_key() -> dict[str, object]:
    import torch

    return {"cpu_model": cpu_info.cpu_model(), "threads": torch.get_num_threads(),
            "torch": torch.__version__}


def cache_path(cache_dir: Path, key: dict[str, object]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir / f"device-profile-{digest}.json"


def _cached_cpu_profile(cache_dir: Path, refresh: bool, verify: bool = False) -> DeviceProfile:
    key = cpu_cache_key()
    path = cache_path(cache_dir, key)
    probe = cached = None
    if not refresh:
        cached = _read_cache(path, key)
        if cached is not None:
            probe = quick_probe() if verify else None
            verdict = freshness.judge(cached, time.time(), probe)
            if not verdict.stale:
                if verdict.reason:
                    logger.warning("device profile %s: %s", path, verdict.reason)
                return cached
            logger.info("re-measuring the device profile %s: %s", path, verdict.reason)
    profile = measure_cpu_profile()
    if probe is not None:  # the probe ran on a quieter moment than every full run: keep its best
        profile = freshness.best_of([profile, probe])
    profile = freshness.settle(cached, profile)  # never lowered by a busy moment
    _write_cache(path, key, profile)
    return profile


def measure_cpu_profile(runs: int = 3) -> DeviceProfile:
    """Static facts plus the bandwidth and GEMM microbenchmarks, the best of `runs` short runs
    (~1.5 s each): a burst of other load spoils one run, rarely all of them."""
    from chip.device import cpu_bench

    runs = max(1, runs)
    budget_s = cpu_bench.GEMM_SECONDS_PER_DTYPE / runs
    measurements = [_profile(cpu_bench.measure_bandwidth(),
                             cpu_bench.measure_peak_flops(budget_s=budget_s))
                    for _ in range(runs)]
    profile = freshness.best_of(measurements)
    logger.info("measured %s (best of %d): %.1f GB/s, %s", profile.name, len(measurements),
                profile.memory_bandwidth / 1e9,
                ", ".join(f"{k} {v / 1e9:.1f} GFLOP/s" for k, v in profile.peak_flops.items()))
    return profile


def quick_probe() -> DeviceProfile:
    """Bandwidth and bf16 GEMM in ~0.3 s: enough to tell a cached profile measured under load."""
    import torch

    from chip.device import cpu_bench

    return _profile(cpu_bench.measure_bandwidth(cpu_bench.BANDWIDTH_BYTES // 2, reps=2),
                    {"bfloat16": cpu_bench.measure_gemm_flops(torch.bfloat16, budget_s=0.05)})


def _profile(bandwidth: float, peak_flops: dict[str, float]) -> DeviceProfile:
    return DeviceProfile(kind="cpu", name=cpu_info.cpu_model(),
                         compute_units=cpu_info.usable_cores(),
                         memory_bytes=cpu_info.memory_bytes(), memory_bandwidth=bandwidth,
                         peak_flops=peak_flops, isa_flags=cpu_info.isa_flags(), measured=True,
                         measured_at=time.time())


def _read_cache(path: Path, key: dict[str, object]) -> DeviceProfile | None:
    try:
        data = json.loads(path.read_text())
        if data.get("key") != key:
            return None
        return DeviceProfile(**data["profile"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError) as e:
        logger.warning("ignoring unreadable device profile cache %s: %s", path, e)
        return None


def _write_cache(path: Path, key: dict[str, object], profile: DeviceProfile) -> None:
    # Write then rename, so a concurrent reader never sees half a file.
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"key": key, "profile": dataclasses.asdict(profile)}, indent=2))
        tmp.replace(path)
    except OSError as e:
        logger.warning("could not cache the device profile at %s: %s", path, e)


__all__ = ["detect_profile", "default_cache_dir", "measure_cpu_profile", "quick_probe"]
