"""Batched LoRA: many adapters (and none) in one batch, each row adding its own low-rank product.

For row t with adapter k = indices[t] >= 0: y[t] += scalings[k] * B_k (A_k x[t]); rows with -1
(the base model) are left alone. Adapters live stacked in slots: A (n, r, in), B (n, out, r), an
adapter of lower rank zero-padded to r (exact: the padding adds zeros).

Three implementations, same contract:
- `add_lora` (reference): gathers each row's A and B and multiplies per row (T x r x in memory;
  for tests).
- `add_lora_segments`: rows grouped by adapter (argsort), two small matmuls per adapter present,
  scattered back with index_add_.
- `add_lora_dense` (the fast path): every slot's shrink in one matmul, x (T, in) @ A_all^T
  (in, n*r),
  a per-row mask that keeps only the row's own adapter's r columns times its scaling, then one
  addmm with B_all (n*r, out). No sort, no per-adapter loop: 3 ops whatever the mix. It computes
  n*r columns for every row, which is cheap while n*r (4 x 16 = 64) is small next to `in` and
  `out`; the mask (`lora_row_scales`) depends only on the batch, so a forward pass builds it once
  and passes it to every layer. Measured against the segment loop in benchmarks/lora.py.

B is stored by the callers as (n, r, out) and passed as its (n, out, r) transposed view, so B_all
is a free reshape (also of the first m slots: callers pass only the slots up to the highest one a
batch uses, so one adapter costs r columns, not n*r); any other layout costs one copy per call.
"""
from __future__ import annotations

import torch

from chip.dispatch import register


def lora_row_scales(indices: torch.Tensor, scalings: torch.Tensor, rank: int,
                    dtype: torch.dtype) -> torch.Tensor:
    """indices (T,) long (-1: none), scalings (n,) -> (T, n*rank): scalings[k] on row t's own
    adapter's rank columns (k = indices[t]), 0 elsewhere."""
    n = scalings.shape[0]
    one_hot = torch.zeros(indices.shape[0], n + 1, dtype=scalings.dtype, device=indices.device)
    one_hot.scatter_(1, (indices + 1).unsqueeze(1), 1.0)  # column 0 is "no adapter"
    per_slot = one_hot[:, 1:] * scalings  # (T, n)
    return per_slot.repeat_interleave(rank, dim=1).to(dtype)  # (T, n*r)


def _check(y: torch.Tensor, x: torch.Tensor, indices: torch.Tensor, lora_a: torch.Tensor,
           lora_b: torch.Tensor, scalings: torch.Tensor) -> None:
    assert x.dim() == 2 and y.dim() == 2 and x.shape[0] == y.shape[0] == indices.shape[0], \
        "x (T, in), y (T, out) and indices (T,) must agree on T"
    n, r, k = lora_a.shape
    assert k == x.shape[1] and lora_b.shape == (n, y.shape[1], r) and scalings.shape == (n,), \
        f"A {tuple(lora_a.shape)} / B {tuple(lora_b.shape)} / scalings do not match x, y"


@register("add_lora", "reference")
def add_lora(y: torch.Tensor, x: torch.Tensor, indices: torch.Tensor, lora_a: torch.Tensor,
             lora_b: torch.Tensor, scalings: torch.Tensor,
             row_scales: torch.Tensor | None = None) -> torch.Tensor:
    """y (T, out), x (T, in), indices (T,) long, A (n, r, in), B (n, out, r), scalings (n,) ->
    y plus each row's adapter product (a new tensor). `row_scales` is ignored here."""
    _check(y, x, indices, lora_a, lora_b, scalings)
    rows = (indices >= 0).nonzero().squeeze(1)
    if rows.numel() == 0:
        return y.clone()
    k = indices[rows]
    xf = x[rows].float()
    h = torch.einsum("ti,tri->tr", xf, lora_a[k].float())  # (R, r)
    delta = torch.einsum("tr,tor->to", h, lora_b[k].float()) * scalings[k].float().unsqueeze(1)
    out = y.clone()
    out[rows] = (y[rows].float() + delta).to(y.dtype)
    return out


def add_lora_segments(y: torch.Tensor, x: torch.Tensor, indices: torch.Tensor,
                      lora_a: torch.Tensor, lora_b: torch.Tensor, scalings: torch.Tensor,
                      row_scales: torch.Tensor | None = None) -> torch.Tensor:
    """Same contract, in place on y (returned): rows sorted by adapter, two matmuls per segment."""
    _check(y, x, indices, lora_a, lora_b, scalings)
    order = torch.argsort(indices, stable=True)
    counts = torch.bincount(indices + 1, minlength=lora_a.shape[0] + 1).tolist()
    start = counts[0]  # rows without an adapter sort first
    for slot, count in enumerate(counts[1:]):
        if count:
            rows = order[start:start + count]
            h = x.index_select(0, rows) @ lora_a[slot].t()  # (R, r)
            y.index_add_(0, rows, h @ lora_b[slot].t(), alpha=float(scalings[slot]))
            start += count
    return y


@register("add_lora", "cpu")
@register("add_lora", "cuda")
def add_lora_dense(y: torch.Tensor, x: torch.Tensor, indices: torch.Tensor, lora_a: torch.Tensor,
                   lora_b: torch.Tensor, scalings: torch.Tensor,
                   row_scales: torch.Tensor | None = None) -> torch.Tensor:
    """Same contract, in place on y (returned): all slots' shrink at once, masked per row.

    Computes in the slots' dtype: bf16 activations with float32 slots run the two small
    matmuls in float32, which on CPU is ~3x faster than bf16 at a few rows (no oneDNN weight
    reorder per call) and slower at hundreds; callers choose by the number of rows."""
    _check(y, x, indices, lora_a, lora_b, scalings)
    n, r, k = lora_a.shape
    if row_scales is None:
        row_scales = lora_row_scales(indices, scalings, r, lora_a.dtype)
    h = x.to(lora_a.dtype) @ lora_a.reshape(n * r, k).t()  # (T, n*r)
    h.mul_(row_scales)
    b_all = lora_b.transpose(1, 2).reshape(n * r, y.shape[1])  # (n*r, out): a view when stored so
    if y.dtype == h.dtype:
        return y.addmm_(h, b_all)
    return y.add_(h @ b_all)
