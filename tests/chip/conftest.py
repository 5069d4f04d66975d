"""Fixtures for the chip tests: the Triton kernels loaded in interpreter mode (CPU) or compiled (GPU).

`triton.jit` decides at decoration time whether a kernel is interpreted (TRITON_INTERPRET=1), so
the kernel modules are (re)imported under the wanted setting rather than relying on import order.
Triton's own library functions (tl.sum, tl.max, tl.sigmoid) are decorated when `triton` is first
imported, so the interpreter only works if that first import saw TRITON_INTERPRET=1. chip.ops
skips the kernels on CPU-only machines, but other imports (transformers' modeling_llama) pull triton
in compiled; then the interpreted tests skip here and `test_triton_kernels.py` reruns itself in a
fresh process with TRITON_INTERPRET=1.
"""
from __future__ import annotations

import importlib
import os
import sys
from types import SimpleNamespace

import pytest
import torch

from chip.ops import TRITON_MODULES

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def load_triton_kernels(interpret: bool) -> SimpleNamespace:
    previous = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1" if interpret else "0"
    try:
        modules = {}
        for name in TRITON_MODULES:
            full = f"chip.ops.{name}"
            module = sys.modules.get(full)
            modules[name] = importlib.reload(module) if module else importlib.import_module(full)
        return SimpleNamespace(**modules)
    finally:
        if previous is None:
            os.environ.pop("TRITON_INTERPRET", None)
        else:
            os.environ["TRITON_INTERPRET"] = previous


def triton_imported_compiled() -> bool:
    """True when this process already imported triton without TRITON_INTERPRET=1."""
    if "triton" not in sys.modules:
        return False
    from triton.language import standard
    from triton.runtime.interpreter import InterpretedFunction

    return not isinstance(standard.sum, InterpretedFunction)


@pytest.fixture(scope="module")
def interpreted():
    """The kernel modules running in the Triton interpreter on CPU tensors.

    TRITON_INTERPRET stays set while the module's tests run: Triton imports parts of itself lazily
    at the first launch and checks the variable again then.
    """
    if triton_imported_compiled():
        pytest.skip("triton was imported without TRITON_INTERPRET=1; a fresh process runs these")
    previous = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        pytest.importorskip("triton")
        yield load_triton_kernels(interpret=True)
    finally:
        if previous is None:
            os.environ.pop("TRITON_INTERPRET", None)
        else:
            os.environ["TRITON_INTERPRET"] = previous
    if torch.cuda.is_available():
        load_triton_kernels(interpret=False)  # leave compiled kernels registered for GPU tests


@pytest.fixture(scope="module")
def compiled():
    """The kernel modules compiled for the GPU."""
    return load_triton_kernels(interpret=False)
