"""Static facts about this CPU: model name, usable cores, ISA flags, memory size. No timing here."""
from __future__ import annotations

import os
import platform
from pathlib import Path

# The flags that decide which kernels are fast (x86 and Arm names as /proc/cpuinfo spells them).
INTERESTING_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni",
    "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16",
    "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve", "sve2", "bf16", "i8mm",
)

CPUINFO = Path("/proc/cpuinfo")
MEMINFO = Path("/proc/meminfo")


def usable_cores() -> int:
    """Cores this process may run on (respects taskset/cgroup cpusets, unlike os.cpu_count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _cpuinfo_fields(text: str) -> dict[str, str]:
    # Fields of the first processor block; later blocks repeat them on homogeneous machines.
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_model(cpuinfo_text: str | None = None) -> str:
    text = _read(CPUINFO) if cpuinfo_text is None else cpuinfo_text
    fields = _cpuinfo_fields(text)
    return fields.get("model name") or fields.get("Model") or platform.processor() or "unknown cpu"


def isa_flags(cpuinfo_text: str | None = None) -> list[str]:
    """The interesting ISA extensions this CPU reports ('flags' on x86, 'Features' on Arm), sorted."""
    text = _read(CPUINFO) if cpuinfo_text is None else cpuinfo_text
    fields = _cpuinfo_fields(text)
    reported = set((fields.get("flags") or fields.get("Features") or "").split())
    return sorted(reported.intersection(INTERESTING_FLAGS))


def memory_bytes(meminfo_text: str | None = None) -> int:
    """Physical memory: MemTotal from /proc/meminfo, else pages x page size."""
    text = _read(MEMINFO) if meminfo_text is None else meminfo_text
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024  # reported in kB
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
