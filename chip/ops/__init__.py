"""The kernel library: one file per op. Importing this package registers every implementation.

Call ops through `chip.dispatch(name, device)`; the functions in the op files are the torch
references (plus CPU fast paths where they pay). The `*_triton.py` kernels register as backend
"cuda"; they are imported only when a GPU is present or TRITON_INTERPRET=1 asks for the Triton
interpreter (tests), so CPU-only processes never pay for importing Triton.
"""
import importlib.util
import os

from chip.ops import (activation, attention, int8_matmul, kv_cache, linear, lora,  # noqa: F401
                      norm, rotary, sampling, token_bitmask)

# Dependencies first: attention_triton imports attention_prefill_triton (reloads go in this order).
TRITON_MODULES = ("activation_triton", "attention_prefill_triton", "attention_triton",
                  "kv_cache_triton", "norm_triton", "rotary_triton")


def triton_wanted() -> bool:
    """True when the Triton kernels can run here: a CUDA device, or the interpreter requested."""
    if importlib.util.find_spec("triton") is None:
        return False
    if os.environ.get("TRITON_INTERPRET") == "1":
        return True
    import torch

    return torch.cuda.is_available()


if triton_wanted():
    for _name in TRITON_MODULES:
        importlib.import_module(f"chip.ops.{_name}")
