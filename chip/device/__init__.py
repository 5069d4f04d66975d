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
from pathlib import Path

from shared import DeviceProfile

from chip.device import cpu_info

logger = logging.getLogger(__name__)

CACHE_ENV = "FLYWHEEL_CACHE_DIR"


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "flywheel")


def detect_profile(device: str = "auto", cache_dir: str | os.PathLike | None = None,
                   refresh: bool = False) -> DeviceProfile:
    """The profile of `device` ('auto', 'cpu', 'cuda', 'cuda:1').

    CPU profiles are measured (~3 s) the first time and then read from
    `<cache_dir>/device-profile-<key>.json`, keyed by CPU model, torch thread count and torch version;
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
    return _cached_cpu_profile(Path(cache_dir) if cache_dir else default_cache_dir(), refresh)


def cpu_cache_key() -> dict[str, object]:
    import torch

    return {"cpu_model": cpu_info.cpu_model(), "threads": torch.get_num_threads(),
            "torch": torch.__version__}


def cache_path(cache_dir: Path, key: dict[str, object]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir / f"device-profile-{digest}.json"


def _cached_cpu_profile(cache_dir: Path, refresh: bool) -> DeviceProfile:
    key = cpu_cache_key()
    path = cache_path(cache_dir, key)
    if not refresh:
        cached = _read_cache(path, key)
        if cached is not None:
            return cached
    profile = measure_cpu_profile()
    _write_cache(path, key, profile)
    return profile


def measure_cpu_profile() -> DeviceProfile:
    """Static facts plus the bandwidth and GEMM microbenchmarks (~3 s)."""
    from chip.device import cpu_bench

    profile = DeviceProfile(kind="cpu", name=cpu_info.cpu_model(),
                            compute_units=cpu_info.usable_cores(),
                            memory_bytes=cpu_info.memory_bytes(),
                            memory_bandwidth=cpu_bench.measure_bandwidth(),
                            peak_flops=cpu_bench.measure_peak_flops(),
                            isa_flags=cpu_info.isa_flags(), measured=True)
    logger.info("measured %s: %.1f GB/s, %s", profile.name, profile.memory_bandwidth / 1e9,
                ", ".join(f"{k} {v / 1e9:.1f} GFLOP/s" for k, v in profile.peak_flops.items()))
    return profile


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


__all__ = ["detect_profile", "default_cache_dir", "measure_cpu_profile"]
