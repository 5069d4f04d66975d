"""chip `linear`: the packed CPU path against F.linear, and the framework layer that caches it."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from chip import dispatch, override
from chip.ops.linear import linear_cpu, pack_linear_weight, packing_supported
from framework.layers import Linear
from tests.utils.engine import create_engine, create_model, greedy_batch

needs_packing = pytest.mark.skipif(not packing_supported(torch.zeros(1, 1, dtype=torch.bfloat16)),
                                   reason="no oneDNN bf16 on this CPU")


@needs_packing
@pytest.mark.parametrize("rows,k,n", [(1, 577, 37), (3, 64, 1000), (17, 130, 129), (64, 96, 300)])
@pytest.mark.parametrize("with_bias", [False, True])
def test_packed_bf16_matches_f_linear(rows, k, n, with_bias):
    gen = torch.Generator().manual_seed(rows * k + n)
    x = torch.randn(rows, k, generator=gen).bfloat16()
    weight = (torch.randn(n, k, generator=gen) * 0.1).bfloat16()
    bias = torch.randn(n, generator=gen).bfloat16() if with_bias else None
    packed = pack_linear_weight(weight)
    assert packed is not None
    got = linear_cpu(x, weight, bias, packed)
    exact = F.linear(x.double(), weight.double(), None if bias is None else bias.double())
    assert got.shape == (rows, n) and got.dtype == torch.bfloat16
    # Both accumulate in float32 and round once to bf16: within one bf16 ulp of the exact result.
    torch.testing.assert_close(got.double(), exact, atol=1e-2, rtol=8e-3)
    torch.testing.assert_close(got, F.linear(x, weight, bias), atol=1e-2, rtol=8e-3)


@needs_packing
def test_packed_handles_leading_dims_and_non_contiguous_input():
    weight = torch.randn(50, 40).bfloat16()
    x = torch.randn(3, 40, 5).bfloat16().transpose(1, 2)  # (3, 5, 40), not contiguous
    got = linear_cpu(x, weight, None, pack_linear_weight(weight))
    torch.testing.assert_close(got, F.linear(x, weight), atol=1e-2, rtol=8e-3)


def test_float32_and_autograd_fall_back_to_f_linear():
    weight = torch.randn(8, 6, requires_grad=True)
    x = torch.randn(2, 6)
    assert pack_linear_weight(weight) is None  # float32: packing measured no faster
    assert torch.equal(dispatch("linear", "cpu")(x, weight, None, None), F.linear(x, weight))
    bf16 = weight.detach().bfloat16().requires_grad_()
    out = linear_cpu(x.bfloat16(), bf16, None, pack_linear_weight(bf16))
    out.float().sum().backward()  # the packed kernel has no backward: must have used F.linear
    torch.testing.assert_close(bf16.grad, x.bfloat16().sum(0).expand(8, 6), atol=1e-2, rtol=1e-2)


@needs_packing
def test_layer_repacks_when_the_weight_changes():
    layer = Linear(24, 10).bfloat16()
    x = torch.randn(4, 24).bfloat16()
    with torch.no_grad():
        first = layer(x)
        layer.weight.mul_(2)  # in place: the version counter moves
        torch.testing.assert_close(layer(x), F.linear(x, layer.weight), atol=1e-2, rtol=8e-3)
        layer.load_state_dict({"weight": torch.randn(10, 24).bfloat16()})
        torch.testing.assert_close(layer(x), F.linear(x, layer.weight), atol=1e-2, rtol=8e-3)
    assert not torch.allclose(first, layer(x).detach())
    clone = copy.deepcopy(layer)  # the packed copy is not deep-copied, it is rebuilt
    with torch.no_grad():
        torch.testing.assert_close(clone(x), layer(x))
    assert [n for n, _ in layer.named_parameters()] == ["weight"]
    assert list(layer.state_dict()) == ["weight"]


def test_layer_trains_with_autograd():
    layer = Linear(6, 3).bfloat16()
    x = torch.randn(5, 6).bfloat16()
    layer(x).float().sum().backward()
    assert layer.weight.grad is not None
    torch.testing.assert_close(layer.weight.grad, x.sum(0).expand(3, 6), atol=2e-2, rtol=1e-2)




def test_engine_greedy_output_unchanged_by_the_packed_linear():
    model = create_model(seed=3, dtype=torch.bfloat16)
    prompts = [[5, 9, 200, 17], list(range(40, 71)), [250] * 9]
    with override("linear", "reference"):
        expected = greedy_batch(create_engine(model), prompts, 12)
    packed_calls = []

    def counting_linear(x, weight, bias=None, packed=None):
        packed_calls.append(packed is not None)
        return linear_cpu(x, weight, bias, packed)

    with override("linear", counting_linear):
        assert greedy_batch(create_engine(model), prompts, 12) == expected
    if packing_supported(model.model.embed_tokens.weight):
        assert packed_calls and all(packed_calls)  # the fast path really ran, for every linear


@needs_packing
@pytest.mark.parametrize("with_bias", [False, True])
def test_grouped_linear_is_the_concatenation_of_its_layers(with_bias):
    from framework.layers.linear import PackedWeightCache, grouped_linear

    torch.manual_seed(0)
    layers = tuple(Linear(48, n, bias=with_bias).bfloat16() for n in (36, 12, 12))
    cache = PackedWeightCache()
    x = torch.randn(7, 48).bfloat16()
    with torch.no_grad():
        expected = torch.cat([F.linear(x, layer.weight, layer.bias) for layer in layers], dim=-1)
        got = grouped_linear(x, layers, cache)
        torch.testing.assert_close(got, expected, atol=1e-2, rtol=8e-3)
        packed = cache.get(*(layer.weight for layer in layers))
        assert grouped_linear(x, layers, cache) is not None and cache.get(
            *(layer.weight for layer in layers)) is packed  # packed once, reused
        layers[1].weight.mul_(-3)  # one member changes in place: the group repacks
        expected = torch.cat([F.linear(x, layer.weight, layer.bias) for layer in layers], dim=-1)
        torch.testing.assert_close(grouped_linear(x, layers, cache), expected, atol=2e-2, rtol=8e-3)


@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("rows", [1, 5, 40])  # the C kernel (<= 8 rows), torch's paths beyond
def test_int8_grouped_linear_is_exactly_the_concatenation_of_its_int8_layers(with_bias, rows):
    from framework.layers.linear import PackedWeightCache, grouped_linear

    torch.manual_seed(1)
    layers = tuple(Linear(64, n, bias=with_bias).bfloat16() for n in (36, 12, 12))
    for layer in layers:
        layer.quantization = "int8"
    x = torch.randn(rows, 64).bfloat16()
    with torch.no_grad():
        got = grouped_linear(x, layers, PackedWeightCache())
        assert layers[0]._int8_group._key is not None  # one matmul on the group's int8 copy
        # Per-row scales: each output column is the layer's own int8 result, bit for bit.
        assert torch.equal(got, torch.cat([layer(x) for layer in layers], dim=-1))
        layers[2].weight.mul_(-3)  # one member changes in place: the group requantizes
        assert torch.equal(grouped_linear(x, layers, PackedWeightCache()),
                           torch.cat([layer(x) for layer in layers], dim=-1))


def test_grouped_linear_falls_back_for_autograd_and_lora():
    from framework.layers.linear import PackedWeightCache, grouped_linear
    from framework.train.lora import LoRALinear

    layers = (Linear(8, 4).bfloat16(), Linear(8, 6).bfloat16())
    x = torch.randn(3, 8).bfloat16()
    grouped_linear(x, layers, PackedWeightCache()).float().sum().backward()
    assert all(layer.weight.grad is not None for layer in layers)  # autograd went through F.linear
    lora = LoRALinear(layers[1], rank=2, alpha=4.0)
    with torch.no_grad():
        lora.lora_b.fill_(0.5)  # an adapter that changes the output
        got = grouped_linear(x, (layers[0], lora), PackedWeightCache())
        torch.testing.assert_close(got, torch.cat([layers[0](x), lora(x)], dim=-1))


@needs_packing
def test_engine_greedy_output_unchanged_by_grouped_projections(monkeypatch):
    import framework.layers.linear as linear_layer

    model = create_model(seed=5, dtype=torch.bfloat16)
    prompts = [[5, 9, 200, 17], list(range(40, 71)), [250] * 9]
    fused = greedy_batch(create_engine(model), prompts, 12)
    monkeypatch.setattr(linear_layer, "packed_linear_accepts", lambda x, bias: False)
    assert greedy_batch(create_engine(model), prompts, 12) == fused
