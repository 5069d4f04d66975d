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


@register("store_kv_cache", "cpu")
def store_kv_cache_cpu(k: torch.Tensor, v: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                       slot_mapping: torch.Tensor) -> None:
    """Same contract. Copies whole token rows with index_copy_ on an int64 view of the bytes, which
    is many times faster on CPU than bf16 advanced-index assignment."""
    for new, cache in ((k, k_cache), (v, v_cache)):
        rows = cache.view(-1, cache.shape[2] * cache.shape[3])  # (num_slots, Hk*D)
        src = new.reshape(new.shape[0], -1).to(cache.dtype)
        if (rows.shape[1] * rows.element_size()) % 8 == 0:
            rows, src = rows.view(torch.int64), src.contiguous().view(torch.int64)
        rows.index_copy_(0, slot_mapping, src)
