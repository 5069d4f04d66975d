"""What a device can do, as numbers the engine and utilization accounting can use."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class DeviceProfile:
    kind: str  # "cpu" or "cuda"
    name: str
    compute_units: int  # CPU cores or GPU SMs
    memory_bytes: int
    memory_bandwidth: float  # bytes/s (measured on CPU, datasheet on GPU)
    peak_flops: dict[str, float] = field(default_factory=dict)  # dtype name -> FLOP/s
    isa_flags: list[str] = field(default_factory=list)  # e.g. avx2, avx512f, amx_bf16
    measured: bool = False  # True when the figures come from a microbenchmark
    measured_at: float | None = None  # Unix time of that measurement (a cached one goes stale)

    def __post_init__(self) -> None:
        if self.kind not in ("cpu", "cuda"):
            raise ValueError(f"DeviceProfile.kind must be 'cpu' or 'cuda', got {self.kind!r}")
        if self.memory_bytes <= 0 or self.memory_bandwidth <= 0:
            raise ValueError("DeviceProfile memory size and bandwidth must be positive")

    def peak_flops_for(self, dtype: str) -> float:
        """Peak FLOP/s for a dtype name ('float32', 'bfloat16', ...), falling back to float32."""
        return self.peak_flops.get(dtype) or self.peak_flops.get("float32", 0.0)
