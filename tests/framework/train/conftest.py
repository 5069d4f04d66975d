"""Factories: a tiny Llama and random token examples."""
from __future__ import annotations

import torch

from framework.train import KTOExample, PreferenceExample, SFTExample
from model.llama import LlamaForCausalLM
from shared import ModelConfig

VOCAB = 64


def tiny_model(seed: int = 0, tie: bool = False) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      tie_word_embeddings=tie)
    return LlamaForCausalLM(cfg)


def random_ids(generator: torch.Generator, low: int, high: int) -> list[int]:
    n = int(torch.randint(low, high + 1, (1,), generator=generator))
    return torch.randint(3, VOCAB, (n,), generator=generator).tolist()


def sft_examples(count: int, seed: int = 0) -> list[SFTExample]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        prompt, answer = random_ids(g, 2, 6), random_ids(g, 2, 8)
        out.append(SFTExample(prompt + answer, [0] * len(prompt) + [1] * len(answer)))
    return out


def preference_examples(count: int, seed: int = 0) -> list[PreferenceExample]:
    g = torch.Generator().manual_seed(seed)
    return [PreferenceExample(random_ids(g, 2, 6), random_ids(g, 2, 6), random_ids(g, 2, 6))
            for _ in range(count)]


def kto_examples(count: int, seed: int = 0) -> list[KTOExample]:
    g = torch.Generator().manual_seed(seed)
    return [KTOExample(random_ids(g, 2, 6), random_ids(g, 2, 6), desirable=bool(i % 2))
            for i in range(count)]


def max_param_diff(a, b) -> float:
    pb = dict(b.named_parameters())
    return max(float((p - pb[n]).detach().abs().max()) for n, p in a.named_parameters())
