"""Random paged-attention inputs for the kernel tests: scattered blocks, as after churn."""
from __future__ import annotations

import torch


def paged_case(dtype, q_lens, ctx_lens, block_size=4, num_kv_heads=3, group=3, head_dim=16, seed=0,
               q_scale=1.0):
    """(q, k_cache, v_cache, block_tables, cu_seqlens_q, context_lens) for chip's paged_attention.
    Sequence i has ctx_lens[i] cached tokens, of which its last q_lens[i] are this step's queries."""
    gen = torch.Generator().manual_seed(seed)
    num_blocks = sum(-(-c // block_size) for c in ctx_lens) + 5
    shape = (num_blocks, block_size, num_kv_heads, head_dim)
    k_cache = torch.randn(*shape, generator=gen).to(dtype)
    v_cache = torch.randn(*shape, generator=gen).to(dtype)
    order = torch.randperm(num_blocks, generator=gen)
    width = max(-(-c // block_size) for c in ctx_lens) + 2
    tables, used = torch.zeros(len(ctx_lens), width, dtype=torch.int32), 0
    for i, ctx in enumerate(ctx_lens):
        n = -(-ctx // block_size)
        tables[i, :n] = order[used:used + n]
        used += n
    cu = torch.tensor([0] + torch.tensor(q_lens).cumsum(0).tolist(), dtype=torch.int32)
    q = torch.randn(sum(q_lens), num_kv_heads * group, head_dim, generator=gen).to(dtype) * q_scale
    return q, k_cache, v_cache, tables, cu, torch.tensor(ctx_lens, dtype=torch.int32)
