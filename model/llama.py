"""One configurable decoder for Llama 2/3, Qwen2/2.5 (QKV bias) and Mistral (GQA, tied embeddings).

Parameter names follow Hugging Face's (`model.layers.0.self_attn.q_proj.weight`, ...) so loading a
checkpoint is a plain name lookup. Implements `shared.CausalLM`.
"""
from __future__ import annotations

import torch
from torch import nn

from framework.layers import Attention, Embedding, Linear, RMSNorm, RotaryEmbedding, SiluAndMul
from framework.layers.linear import PackedWeightCache, grouped_linear
from shared import ModelConfig


class LlamaAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = (
            cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim)
        q_size, kv_size = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        self.q_proj = Linear(cfg.hidden_size, q_size, bias=cfg.attention_bias)
        self.k_proj = Linear(cfg.hidden_size, kv_size, bias=cfg.attention_bias)
        self.v_proj = Linear(cfg.hidden_size, kv_size, bias=cfg.attention_bias)
        self.o_proj = Linear(q_size, cfg.hidden_size)
        self.rotary = RotaryEmbedding(self.head_dim, cfg.max_position_embeddings, cfg.rope_theta,
                                      cfg.rope_scaling)
        self.attn = Attention(self.num_heads, self.num_kv_heads, self.head_dim)
        self._qkv_packed = PackedWeightCache()  # q/k/v as one matmul at inference

    def forward(self, positions: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        tokens = x.shape[0]
        qkv = grouped_linear(x, (self.q_proj, self.k_proj, self.v_proj), self._qkv_packed)
        q_size, kv_size = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        q, k, v = qkv.split([q_size, kv_size, kv_size], dim=-1)
        q = q.view(tokens, self.num_heads, self.head_dim)  # (T, Hq, D)
        k = k.view(tokens, self.num_kv_heads, self.head_dim)  # (T, Hk, D)
        v = v.view(tokens, self.num_kv_heads, self.head_dim)
        q, k = self.rotary(positions, q, k)
        out = self.attn(q, k, v)  # (T, Hq, D)
        return self.o_proj(out.reshape(tokens, -1))


class LlamaMLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gate_proj = Linear(cfg.hidden_size, cfg.intermediate_size)
        self.up_proj = Linear(cfg.hidden_size, cfg.intermediate_size)
        self.down_proj = Linear(cfg.intermediate_size, cfg.hidden_size)
        self.act = SiluAndMul()
        self._gate_up_packed = PackedWeightCache()  # gate/up as one matmul at inference

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate_up = grouped_linear(x, (self.gate_proj, self.up_proj), self._gate_up_packed)
        return self.down_proj(self.act(gate_up))


class LlamaDecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.self_attn = LlamaAttention(cfg)
        self.mlp = LlamaMLP(cfg)
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, positions: torch.Tensor, x: torch.Tensor, residual: torch.Tensor | None):
        if residual is None:
            residual = x
            x = self.input_layernorm(x)
        else:
            x, residual = self.input_layernorm(x, residual)
        x = self.self_attn(positions, x)
        x, residual = self.post_attention_layernorm(x, residual)
        return self.mlp(x), residual


class LlamaBackbone(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.embed_tokens = Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(LlamaDecoderLayer(cfg) for _ in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        x, residual = self.embed_tokens(input_ids), None
        for layer in self.layers:
            x, residual = layer(positions, x, residual)
        x, _ = self.norm(x, residual)
        return x


class LlamaForCausalLM(nn.Module):
    """The decoder plus its output head. `forward` returns hidden states; `compute_logits` the head."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.model = LlamaBackbone(cfg)
        self.lm_head = None if cfg.tie_word_embeddings else Linear(cfg.hidden_size, cfg.vocab_size)

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """(T,) ids, (T,) positions -> (T, hidden) normed hidden states."""
        return self.model(input_ids, positions)

    def compute_logits(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """(N, hidden) -> (N, vocab) float32."""
        if self.lm_head is None:
            return self.model.embed_tokens.as_logits(hidden_states)
        return self.lm_head(hidden_states).float()
