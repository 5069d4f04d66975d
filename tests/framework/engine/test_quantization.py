"""EngineConfig.quantization="int8": the engine runs the int8-rounded model, and only while asked."""
from __future__ import annotations

import pytest
import torch

from chip import override
from chip.ops import int8_matmul_native
from chip.ops.int8_matmul import dequantize_int8, quantize_int8
from framework.layers import Linear
from shared import EngineConfig
from tests.utils.engine import create_engine, create_model, greedy_batch

PROMPTS = [[5, 9, 200, 17], list(range(40, 71)), [250] * 9]




def test_int8_engine_generates_what_the_dequantized_model_generates():
    model = create_model(seed=4)
    rounded = create_model(seed=4)  # reference: linear weights replaced by their int8 rounding
    with torch.no_grad():
        for module in rounded.modules():
            if isinstance(module, Linear):
                module.weight.copy_(dequantize_int8(*quantize_int8(module.weight), torch.float32))
    expected = greedy_batch(create_engine(rounded), PROMPTS, 10)
    assert greedy_batch(create_engine(model, quantization="int8"), PROMPTS, 10) == expected
    assert model.model.layers[0].mlp.down_proj._int8._key is not None  # the int8 copy was used
    # A later engine without quantization puts the model back on its full-precision weights.
    plain = greedy_batch(create_engine(model), PROMPTS, 10)
    assert all(m.quantization is None for m in model.modules() if isinstance(m, Linear))
    assert plain == greedy_batch(create_engine(create_model(seed=4)), PROMPTS, 10)


def test_int8_bf16_decode_path_stays_close_to_bf16():
    model = create_model(seed=6, dtype=torch.bfloat16)
    layer = model.model.layers[0].mlp.down_proj
    x = torch.randn(3, layer.in_features).bfloat16()
    with torch.inference_mode():
        full = layer(x).float()
        layer.quantization = "int8"
        quantized = layer(x).float()
    assert layer._int8._key is not None
    w_int8, scales = quantize_int8(layer.weight)
    bound = (x.float().abs() @ (scales / 2).expand(layer.in_features, -1)).max()  # per-output bound
    assert (quantized - full).abs().max() <= bound * 1.05 + 0.05 * full.abs().max()
    layer.quantization = None


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_int8_decode_by_the_c_kernel_generates_what_the_reference_int8_path_does(dtype, monkeypatch):
    # Decode steps (<= 8 rows) go to chip/native/int8_gemv.c; the reference dequantizes in torch.
    if not int8_matmul_native._dtype_supported(dtype):
        pytest.skip("no AVX-512 kernel here")
    calls = []
    kernel = int8_matmul_native.int8_gemv
    monkeypatch.setattr(int8_matmul_native, "int8_gemv", lambda *a: calls.append(1) or kernel(*a))
    model = create_model(seed=5, dtype=dtype)
    got = greedy_batch(create_engine(model, quantization="int8"), PROMPTS, 12)
    assert len(calls) >= 4 * 2 * 11  # qkv, o, gate/up, down x 2 layers x 11 decode steps
    with override("int8_matmul", "reference"):
        want = greedy_batch(create_engine(model, quantization="int8"), PROMPTS, 12)
    assert got == want


def test_quantization_setting_is_validated():
    with pytest.raises(ValueError, match="quantization"):
        EngineConfig(quantization="int4")
