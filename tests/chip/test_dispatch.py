"""dispatch picks per device with a reference fallback, and override forces an implementation."""
from __future__ import annotations

import pytest
import torch

from chip import dispatch, override, register
from chip.dispatch import implementations
from chip.ops.int8_matmul import int8_matmul
from chip.ops.sampling import filter_logits, filter_logits_fast


def test_device_strings_and_fallback_to_reference():
    assert dispatch("filter_logits", "cpu") is filter_logits_fast
    assert dispatch("filter_logits", torch.device("cpu")) is filter_logits_fast
    # No CUDA implementation of int8_matmul: every device gets the reference.
    assert dispatch("int8_matmul", "cuda:1") is int8_matmul


def test_override_with_callable_and_backend_name_nests_and_restores():
    calls = []

    def spy(*args):
        calls.append(args)
        return "spied"

    with override("filter_logits", "reference"):
        assert dispatch("filter_logits", "cpu") is filter_logits
        with override("filter_logits", spy):
            assert dispatch("filter_logits", "cuda")(1, 2) == "spied"
        assert dispatch("filter_logits", "cpu") is filter_logits
    assert dispatch("filter_logits", "cpu") is filter_logits_fast
    assert calls == [(1, 2)]


def test_override_is_restored_when_the_block_raises():
    with pytest.raises(RuntimeError):
        with override("rms_norm", "reference"):
            raise RuntimeError("boom")
    assert dispatch("rms_norm", "cpu") is implementations("rms_norm")["cpu"]


def test_override_reaches_the_framework_layer():
    from framework.layers.norm import RMSNorm

    norm = RMSNorm(8, 1e-6)
    with override("rms_norm", lambda x, w, eps, residual=None: torch.zeros_like(x)):
        assert torch.equal(norm(torch.ones(2, 8)), torch.zeros(2, 8))
    assert not torch.equal(norm(torch.ones(2, 8)), torch.zeros(2, 8))


def test_unknown_names_are_rejected():
    with pytest.raises(KeyError, match="no_such_op"):
        dispatch("no_such_op", "cpu")
    with pytest.raises(ValueError, match="tpu"):
        register("rms_norm", "tpu")
