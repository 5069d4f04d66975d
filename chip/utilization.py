"""FLOPs and bytes moved per engine step, and MFU / MBU against a device profile.

Everything takes plain numbers: the engine knows its batch and model shape, this module knows only
arithmetic. Conventions (as in the PaLM paper's MFU and the usual decode MBU):

    flops = 2 * N * T                          # every matmul weight: one multiply-add per token
          + 4 * L * (Hq * D) * C               # attention: QK^T and PV, 2 FLOP each per key
    bytes = W + KV_read + KV_written           # weights streamed once per step, plus KV traffic
    MFU   = flops / seconds / peak_flops[dtype]
    MBU   = bytes / seconds / memory_bandwidth

N = parameters that take part in matmuls (including the LM head, excluding the embedding lookup),
T = tokens computed this step, L = layers, Hq * D = query heads x head dim, and C = the sum over
this step's query tokens of the number of keys each attends to (see `attended_keys`).
"""
from __future__ import annotations

from shared import DeviceProfile


def attended_keys(num_query_tokens: int, context_len: int) -> int:
    """Keys attended by the last `num_query_tokens` tokens of a causal context of `context_len`.

    Query j (0-based among the new ones) sits at position context_len - q + j and sees that many + 1
    keys: sum = q * (context_len - q) + q * (q + 1) / 2. A decode token (q = 1) sees context_len.
    """
    q = num_query_tokens
    if q < 0 or q > context_len:
        raise ValueError(f"need 0 <= num_query_tokens <= context_len, got {q} and {context_len}")
    return q * (context_len - q) + q * (q + 1) // 2


def decoder_matmul_params(hidden_size: int, intermediate_size: int, num_layers: int,
                          num_heads: int, num_kv_heads: int, head_dim: int, vocab_size: int) -> int:
    """N for a Llama-style decoder: per layer q, k, v, o and the gate/up/down MLP, plus the LM head.

        N = L * (H * D * (2 * Hq + 2 * Hk) + 3 * H * I) + V * H

    Biases and norm weights are left out (vector work, not matmuls); a tied LM head still counts,
    since its matmul runs every step whatever storage it shares.
    """
    _check_non_negative(hidden_size=hidden_size, intermediate_size=intermediate_size,
                        num_layers=num_layers, num_heads=num_heads, num_kv_heads=num_kv_heads,
                        head_dim=head_dim, vocab_size=vocab_size)
    attention = hidden_size * head_dim * (2 * num_heads + 2 * num_kv_heads)
    mlp = 3 * hidden_size * intermediate_size
    return num_layers * (attention + mlp) + vocab_size * hidden_size


def step_flops(num_params: int, num_tokens: int, attention_context_tokens: int = 0,
               num_layers: int = 0, num_heads: int = 0, head_dim: int = 0) -> float:
    """FLOPs of one forward step: 2 * num_params * num_tokens + 4 * L * Hq * D * context tokens."""
    _check_non_negative(num_params=num_params, num_tokens=num_tokens,
                        attention_context_tokens=attention_context_tokens, num_layers=num_layers,
                        num_heads=num_heads, head_dim=head_dim)
    matmul = 2.0 * num_params * num_tokens
    attention = 4.0 * num_layers * num_heads * head_dim * attention_context_tokens
    return matmul + attention


def kv_cache_bytes(num_tokens: int, num_layers: int, num_kv_heads: int, head_dim: int,
                   bytes_per_element: int) -> int:
    """Bytes of K and V for `num_tokens` tokens: 2 * L * Hk * D * bytes_per_element per token."""
    _check_non_negative(num_tokens=num_tokens, num_layers=num_layers, num_kv_heads=num_kv_heads,
                        head_dim=head_dim, bytes_per_element=bytes_per_element)
    return 2 * num_layers * num_kv_heads * head_dim * bytes_per_element * num_tokens


def step_bytes(weight_bytes: int, kv_bytes_read: int = 0, kv_bytes_written: int = 0,
               activation_bytes: int = 0) -> float:
    """Bytes one step moves through memory: weights once, KV read and written, optional activations.

    Weights are read once per step however many tokens share them; that is why batching helps decode.
    """
    _check_non_negative(weight_bytes=weight_bytes, kv_bytes_read=kv_bytes_read,
                        kv_bytes_written=kv_bytes_written, activation_bytes=activation_bytes)
    return float(weight_bytes + kv_bytes_read + kv_bytes_written + activation_bytes)


def mfu(flops: float, seconds: float, profile: DeviceProfile, dtype: str = "float32") -> float:
    """Model FLOP utilization: achieved FLOP/s over the profile's peak for `dtype` (0..1, ideally)."""
    peak = profile.peak_flops_for(dtype)
    if peak <= 0:
        raise ValueError(f"profile {profile.name!r} has no peak FLOP/s for {dtype!r} or float32")
    return flops / _positive_seconds(seconds) / peak


def mbu(num_bytes: float, seconds: float, profile: DeviceProfile) -> float:
    """Memory bandwidth utilization: achieved bytes/s over the profile's memory bandwidth."""
    return num_bytes / _positive_seconds(seconds) / profile.memory_bandwidth


def roofline_seconds(flops: float, num_bytes: float, profile: DeviceProfile,
                     dtype: str = "float32") -> float:
    """The fastest a step could run on `profile`: max(flops / peak, bytes / bandwidth).

    Decode steps are usually bandwidth-bound (the second term), long prefills compute-bound.
    """
    peak = profile.peak_flops_for(dtype)
    if peak <= 0:
        raise ValueError(f"profile {profile.name!r} has no peak FLOP/s for {dtype!r} or float32")
    return max(flops / peak, num_bytes / profile.memory_bandwidth)


def _positive_seconds(seconds: float) -> float:
    if not seconds > 0:
        raise ValueError(f"step time must be positive, got {seconds} s")
    return seconds


def _check_non_negative(**values: int) -> None:
    for name, value in values.items():
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
