"""Write this step's keys and values into their slots of the paged KV cache."""
from __future__ import annotations

import torch

from chip.dispatch import register


@register("store_kv_cache", "reference")
def store_kv_cache(k: torch.Tensor, v: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                   slot_mapping: torch.Tensor) -> None:
    """k, v (T, Hk, D) go to flat slots slot_mapping (T,) of caches (num_blocks, block_size, Hk, D)."""
    k_cache.view(-1, *k_cache.shape[2:])[slot_mapping] = k.to(k_cache.dtype)
    v_cache.view(-1, *v_cache.shape[2:])[slot_mapping] = v.to(v_cache.dtype)
