"""The CPU fast paths change nothing a real model computes: stories260K's logits are bit-identical
with every op forced to its torch reference."""
from __future__ import annotations

import contextlib

import pytest
import torch

from chip import override
from tests.shared_data import STORIES_HF

MODEL_DIR = STORIES_HF
BIT_IDENTICAL_OPS = ("rms_norm", "silu_and_mul", "rotary")


@pytest.mark.skipif(not MODEL_DIR.exists(), reason="shared models not present")
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_stories260k_logits_identical_with_reference_ops(dtype):
    from model.loader import load_model

    loaded = load_model(MODEL_DIR, dtype=dtype)
    ids = torch.tensor([1, 400, 37, 90, 12, 7, 256, 3])
    positions = torch.arange(len(ids))
    with torch.no_grad():
        fast = loaded.model.compute_logits(loaded.model(ids, positions))
        with contextlib.ExitStack() as stack:
            for op in BIT_IDENTICAL_OPS:
                stack.enter_context(override(op, "reference"))
            reference = loaded.model.compute_logits(loaded.model(ids, positions))
    assert torch.equal(fast, reference)
