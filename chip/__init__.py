"""The hardware layer: device profiles, the kernel library and utilization accounting."""
from chip.dispatch import dispatch, override, register

__all__ = ["dispatch", "override", "register"]
