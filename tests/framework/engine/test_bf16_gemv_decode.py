"""bf16 decode steps (1-8 rows) run chip/native/int8_gemv.c's bf16_gemv in every linear; the engine
generates what it generates with that kernel turned off (oneDNN's prepacked linear)."""
from __future__ import annotations

import pytest
import torch

from chip.ops import bf16_gemv_native
from tests.utils.engine import create_engine, create_model, greedy_batch

PROMPTS = [[5, 9, 200, 17], list(range(40, 71)), [250] * 9]


def test_bf16_decode_by_the_gemv_generates_what_onednn_does(monkeypatch):
    if not bf16_gemv_native._cpu_supported():
        pytest.skip("no AVX512_BF16 here")
    calls = []
    kernel = bf16_gemv_native.bf16_gemv
    monkeypatch.setattr(bf16_gemv_native, "bf16_gemv", lambda *a: calls.append(1) or kernel(*a))
    model = create_model(seed=7, dtype=torch.bfloat16)
    got = greedy_batch(create_engine(model), PROMPTS, 12)
    # q, k, v, o, gate, up, down x 2 layers (+ the LM head) on each of 11 decode steps.
    assert len(calls) >= 7 * 2 * 11
    monkeypatch.setattr(bf16_gemv_native, "ENABLED", False)
    calls.clear()
    want = greedy_batch(create_engine(model), PROMPTS, 12)
    assert not calls
    assert got == want


def test_fused_gate_up_and_down_by_the_gemv_stay_within_bf16_rounding_of_onednn(monkeypatch):
    # Greedy tokens of a tiny random model repeat a lot; this compares the values themselves.
    if not bf16_gemv_native._cpu_supported():
        pytest.skip("no AVX512_BF16 here")
    mlp = create_model(seed=8, dtype=torch.bfloat16).model.layers[0].mlp
    x = torch.randn(5, mlp.gate_proj.in_features, generator=torch.Generator().manual_seed(0)).bfloat16()
    calls = []
    kernel = bf16_gemv_native.bf16_gemv
    monkeypatch.setattr(bf16_gemv_native, "bf16_gemv", lambda *a: calls.append(1) or kernel(*a))
    with torch.inference_mode():
        got = mlp(x).double()
        monkeypatch.setattr(bf16_gemv_native, "ENABLED", False)
        want = mlp(x).double()
    assert len(calls) == 3  # gate and up into one output, then down
    exact_scale = want.abs().max()
    assert exact_scale > 0.1
    # Both round the gate/up outputs and the product to bf16: a few bf16 ulps of the largest value.
    assert (got - want).abs().max() <= exact_scale * 2.0 ** -5
    assert not torch.equal(got, torch.zeros_like(got))
