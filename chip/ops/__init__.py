"""The kernel library: one file per op. Importing this package registers every implementation.

Call ops through `chip.dispatch(name, device)`; the functions below are the torch references.
"""
from chip.ops import activation, attention, kv_cache, norm, rotary, sampling  # noqa: F401
