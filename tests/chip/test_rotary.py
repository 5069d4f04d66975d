"""Rotary embedding: inverse frequencies against transformers, and the rotation's defining property."""
from __future__ import annotations

import pytest
import torch

from chip.ops.rotary import apply_rotary, rope_cos_sin, rope_inv_freq

transformers = pytest.importorskip("transformers")
from transformers import LlamaConfig  # noqa: E402
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS  # noqa: E402


@pytest.mark.parametrize("head_dim,theta,scaling", [
    (128, 500000.0, {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192}),  # Llama 3.1
    (64, 500000.0, {"factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                    "original_max_position_embeddings": 8192}),  # Llama 3.2 1B/3B
    (96, 10000.0, {"factor": 4.0, "low_freq_factor": 2.0, "high_freq_factor": 8.0,
                   "original_max_position_embeddings": 2048}),  # odd settings: every band populated
])
def test_llama3_inv_freq_matches_transformers(head_dim, theta, scaling):
    config = LlamaConfig(hidden_size=head_dim * 4, num_attention_heads=4, head_dim=head_dim,
                         max_position_embeddings=scaling["original_max_position_embeddings"] * 4,
                         rope_parameters={"rope_type": "llama3", "rope_theta": theta, **scaling})
    want, _ = ROPE_INIT_FUNCTIONS["llama3"](config)
    got = rope_inv_freq(head_dim, theta, {"rope_type": "llama3", **scaling})
    # transformers computes in float32, we in float64 then round: a few float32 ulps apart.
    torch.testing.assert_close(got, want, rtol=1e-6, atol=0)


@pytest.mark.parametrize("rope_type,scaling", [("default", None), ("linear", {"factor": 4.0})])
def test_default_and_linear_inv_freq_match_transformers(rope_type, scaling):
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    config = LlamaConfig(hidden_size=256, num_attention_heads=4,
                         rope_parameters={"rope_type": rope_type, "rope_theta": 10000.0, **(scaling or {})})
    want = LlamaRotaryEmbedding(config).inv_freq
    got = rope_inv_freq(64, 10000.0, {"rope_type": rope_type, **scaling} if scaling else None)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=0)


def test_unknown_scaling_type_is_rejected():
    with pytest.raises(ValueError, match="yarn"):
        rope_inv_freq(64, 10000.0, {"rope_type": "yarn", "factor": 2.0})


def test_rotation_preserves_norms_and_relative_positions():
    # Rotary's defining property: <rot(q, m), rot(k, n)> depends only on m - n, and norms are kept.
    gen = torch.Generator().manual_seed(0)
    cos_sin = rope_cos_sin(32, 64, 10000.0)
    q, k = torch.randn(1, 1, 32, generator=gen), torch.randn(1, 1, 32, generator=gen)

    def score(m: int, n: int) -> float:
        rq, _ = apply_rotary(q, k, torch.tensor([m]), cos_sin)
        _, rk = apply_rotary(q, k, torch.tensor([n]), cos_sin)
        return float((rq * rk).sum())

    assert score(9, 4) == pytest.approx(score(30, 25), rel=1e-5)
    rq, _ = apply_rotary(q, k, torch.tensor([17]), cos_sin)
    assert float(rq.norm()) == pytest.approx(float(q.norm()), rel=1e-6)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("table_dtype", [torch.float32, torch.bfloat16])  # model.to(bf16) casts it
@pytest.mark.parametrize("scaling", [None, {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                            "high_freq_factor": 4.0,
                                            "original_max_position_embeddings": 64}])
def test_cpu_rotary_equals_reference_bit_for_bit_on_projection_slices(dtype, table_dtype, scaling,
                                                                      monkeypatch):
    from chip.ops import rotary

    gen = torch.Generator().manual_seed(3)
    cos_sin = rotary.rope_cos_sin(64, 512, 10000.0, scaling).to(table_dtype)
    qkv = torch.randn(29, (8 + 2 + 2) * 64, generator=gen).to(dtype) * 4  # as the fused projection
    q, k, _ = qkv.split([8 * 64, 2 * 64, 2 * 64], dim=-1)
    q, k = q.view(29, 8, 64), k.view(29, 2, 64)  # strided views: rows 12 heads apart
    positions = torch.randint(0, 512, (29,), generator=gen)
    expected = rotary.apply_rotary(q, k, positions, cos_sin)
    if rotary._rotary_kernel() is not None:  # the C kernel must answer, not the fallback
        monkeypatch.setattr(rotary, "apply_rotary", lambda *args: pytest.fail("fell back"))
    actual = rotary.apply_rotary_cpu(q, k, positions, cos_sin)
    assert torch.equal(actual[0], expected[0]) and torch.equal(actual[1], expected[1])
    assert actual[0].is_contiguous() and actual[0].dtype == dtype


def test_cpu_rotary_falls_back_under_autograd_and_for_odd_layouts():
    from chip.ops.rotary import apply_rotary, apply_rotary_cpu, rope_cos_sin

    cos_sin = rope_cos_sin(16, 64, 10000.0)
    q = torch.randn(5, 4, 16, requires_grad=True)
    k = torch.randn(5, 2, 16)
    positions = torch.arange(5)
    rotated_q, _ = apply_rotary_cpu(q, k, positions, cos_sin)
    rotated_q.sum().backward()  # a graph exists: the reference ran
    assert q.grad is not None
    heads_strided = torch.randn(5, 16, 4).transpose(1, 2)  # (5, 4, 16) with heads not contiguous
    expected = apply_rotary(heads_strided, k, positions, cos_sin)
    actual = apply_rotary_cpu(heads_strided, k, positions, cos_sin)
    assert torch.equal(actual[0], expected[0]) and torch.equal(actual[1], expected[1])
