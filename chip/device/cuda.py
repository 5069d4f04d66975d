"""GPU profiles: size from torch.cuda, peaks from the datasheet table in gpu_specs.json.

Nothing here runs a kernel: datasheet peaks are what MFU/MBU are conventionally measured against.
A GPU missing from the table gets an estimate from its SM count and clock, with a warning.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from shared import DeviceProfile

logger = logging.getLogger(__name__)

SPECS_PATH = Path(__file__).with_name("gpu_specs.json")
GIB = 1024**3


@dataclass(slots=True)
class GpuFacts:
    """What torch.cuda tells about one device (a dataclass: the table lookup is testable on CPU)."""

    name: str
    num_sms: int
    memory_bytes: int
    clock_hz: float  # boost clock, 0 when unknown
    memory_bus_bits: int = 0  # 0 when unknown
    memory_clock_hz: float = 0.0


def load_gpu_specs(path: Path = SPECS_PATH) -> list[dict]:
    return json.loads(path.read_text())["gpus"]


def match_spec(facts: GpuFacts, specs: list[dict]) -> dict | None:
    """The table row whose 'match' is the longest whole-word part of the device name.

    Whole words, so that "L4" does not match an "L40S"; a row's memory bound tells A100 40/80 GB apart.
    """
    candidates = []
    for spec in specs:
        pattern = rf"(?<![a-z0-9]){re.escape(spec['match'].lower())}(?![a-z0-9])"
        if not re.search(pattern, facts.name.lower()):
            continue
        max_gib = spec.get("memory_gib_max")
        if max_gib is not None and facts.memory_bytes > max_gib * GIB:
            continue
        candidates.append(spec)
    # Longest match first; among equal matches, the one with a memory bound is the more specific.
    candidates.sort(key=lambda s: (len(s["match"]), "memory_gib_max" in s), reverse=True)
    return candidates[0] if candidates else None


def profile_from_facts(facts: GpuFacts, specs: list[dict] | None = None) -> DeviceProfile:
    spec = match_spec(facts, load_gpu_specs() if specs is None else specs)
    if spec is None:
        return _estimated_profile(facts)
    return DeviceProfile(kind="cuda", name=facts.name, compute_units=facts.num_sms,
                         memory_bytes=facts.memory_bytes,
                         memory_bandwidth=float(spec["memory_bandwidth"]),
                         peak_flops={k: float(v) for k, v in spec["peak_flops"].items()},
                         measured=False)


def _estimated_profile(facts: GpuFacts) -> DeviceProfile:
    # Rough Ampere/Hopper-class figures per SM per clock: 128 FP32 FMA lanes (256 FLOP) and
    # 1024 dense bf16 tensor-core FMAs (2048 FLOP). Good to a factor of ~2, hence the warning.
    clock_hz = facts.clock_hz or 1.5e9
    fp32 = facts.num_sms * clock_hz * 256
    bf16 = facts.num_sms * clock_hz * 2048
    if facts.memory_bus_bits and facts.memory_clock_hz:
        bandwidth = facts.memory_bus_bits / 8 * facts.memory_clock_hz * 2  # double data rate
    else:
        bandwidth = 1.0e12
    logger.warning("GPU %r is not in %s; estimating peaks from %d SMs at %.2f GHz "
                   "(fp32 %.1f TFLOP/s, bf16 %.1f TFLOP/s, %.0f GB/s): MFU/MBU are approximate",
                   facts.name, SPECS_PATH.name, facts.num_sms, clock_hz / 1e9, fp32 / 1e12,
                   bf16 / 1e12, bandwidth / 1e9)
    return DeviceProfile(kind="cuda", name=facts.name, compute_units=facts.num_sms,
                         memory_bytes=facts.memory_bytes, memory_bandwidth=bandwidth,
                         peak_flops={"float32": fp32, "tfloat32": bf16 / 2, "bfloat16": bf16,
                                     "float16": bf16}, measured=False)


def query_gpu(index: int = 0) -> GpuFacts:
    import torch

    props = torch.cuda.get_device_properties(index)
    # clock_rate (kHz) is exposed by recent torch builds; older ones lack it.
    clock_khz = getattr(props, "clock_rate", 0) or 0
    mem_clock_khz = getattr(props, "memory_clock_rate", 0) or 0
    bus_bits = getattr(props, "memory_bus_width", 0) or 0
    return GpuFacts(name=props.name, num_sms=props.multi_processor_count,
                    memory_bytes=props.total_memory, clock_hz=clock_khz * 1e3,
                    memory_bus_bits=bus_bits, memory_clock_hz=mem_clock_khz * 1e3)


def detect_cuda_profile(index: int = 0) -> DeviceProfile:
    return profile_from_facts(query_gpu(index))
