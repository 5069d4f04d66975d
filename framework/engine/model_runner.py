"""Run one scheduled step: flatten it into a single varlen batch, run the model, sample.

The runner owns the KV cache tensors (one pool, a view per attention layer) and knows nothing
about queues or text. A step's tokens are laid out back to back with no padding; attention finds
each sequence's keys through its block table (see `framework.layers.attention_metadata`).
"""
from __future__ import annotations

import torch

from framework.engine.prompt_logprobs import (PromptLogprobsChunk, score_prompts,
                                              wants_prompt_logprobs)
from framework.engine.sampler import Sampler, SamplerOutput
from framework.engine.scheduler import SchedulerOutput
from framework.engine.sequence import Sequence
from framework.layers import Attention, AttentionMetadata, attention_metadata
from framework.layers.lora import LoRABatch, lora_batch
from framework.lora import LoRAManager
from shared import CausalLM


def kv_block_bytes(model: CausalLM, block_size: int, dtype: torch.dtype) -> int:
    """Bytes one KV block takes across all layers (keys and values)."""
    # Read from the attention layers, not the config: a tensor-parallel rank holds fewer KV heads.
    layers = [m for m in model.modules() if isinstance(m, Attention)]
    per_token = 2 * sum(layer.num_kv_heads * layer.head_dim for layer in layers)
    return per_token * block_size * torch.empty((), dtype=dtype).element_size()


class ModelRunner:
    def __init__(self, model: CausalLM, sampler: Sampler, num_blocks: int, block_size: int):
        self.model, self.sampler, self.block_size = model, sampler, block_size
        weight = next(model.parameters())
        self.device, self.dtype = weight.device, weight.dtype
        cfg = model.config
        layers = [m for m in model.modules() if isinstance(m, Attention)]
        assert len(layers) == cfg.num_hidden_layers, "expected one Attention module per layer"
        # (2, layers, num_blocks, block_size, Hk, D); zeros so never-written slots hold no NaNs.
        # Hk is this rank's KV heads (all of them without tensor parallelism).
        self.kv_cache = torch.zeros(2, len(layers), num_blocks, block_size, layers[0].num_kv_heads,
                                    cfg.head_dim, dtype=self.dtype, device=self.device)
        for i, layer in enumerate(layers):
            layer.k_cache, layer.v_cache = self.kv_cache[0, i], self.kv_cache[1, i]
        self.attention_layers = layers
        self.lora: LoRAManager | None = None  # set by the engine when it serves LoRA adapters

    def release(self) -> None:
        """Detach the caches from the model (before a model swap)."""
        for layer in self.attention_layers:
            layer.k_cache = layer.v_cache = None

    def copy_blocks(self, pairs: list[tuple[int, int]]) -> None:
        """Copy-on-write: (src, dst) KV blocks, every layer, keys and values."""
        for src, dst in pairs:
            self.kv_cache[:, :, dst] = self.kv_cache[:, :, src]

    @torch.inference_mode()
    def run(self, scheduled: SchedulerOutput
            ) -> tuple[list[Sequence], SamplerOutput, list[PromptLogprobsChunk]]:
        """Compute the step's tokens; returns the sequences that sample, their samples, and the
        prompt logprobs scored this step (only for requests that asked)."""
        self.copy_blocks(scheduled.block_copies)
        input_ids, positions, meta = self._prepare(scheduled)
        sample_rows = [i for i, (seq, n) in enumerate(zip(scheduled.seqs, scheduled.num_new_tokens))
                       if seq.fork_into == 1 and seq.num_computed_tokens + n == seq.num_tokens]
        with attention_metadata(meta), lora_batch(self._lora_batch(scheduled)):
            hidden = self.model(input_ids, positions)  # (T, H)
        scored = (score_prompts(self.model, hidden, scheduled, meta.cu_seqlens_q)
                  if any(map(wants_prompt_logprobs, scheduled.seqs)) else [])
        if not sample_rows:
            return [], SamplerOutput([], []), scored
        # Each sampling sequence's last token; a speculating one's drafts too (one row each).
        ends = torch.tensor(scheduled.num_new_tokens).cumsum(0).tolist()
        rows = torch.tensor([row for i in sample_rows for row in
                             range(ends[i] - 1 - scheduled.seqs[i].num_spec_tokens, ends[i])],
                            device=self.device)
        logits = self.model.compute_logits(hidden.index_select(0, rows))  # (N + drafts, V) float32
        seqs = [scheduled.seqs[i] for i in sample_rows]
        return seqs, self.sampler(logits, seqs), scored

    def _lora_batch(self, scheduled: SchedulerOutput) -> LoRABatch | None:
        # Tokens are laid out as in `_prepare`: each sequence's num_new_tokens, back to back.
        if self.lora is None:
            return None
        return self.lora.batch([seq.lora_id for seq in scheduled.seqs], scheduled.num_new_tokens)

    def _prepare(self, scheduled: SchedulerOutput) -> tuple[torch.Tensor, torch.Tensor, AttentionMetadata]:
        ids: list[int] = []
        starts: list[int] = []
        for seq, n in zip(scheduled.seqs, scheduled.num_new_tokens):
            start = seq.num_computed_tokens
            ids.extend(seq.token_ids[start:start + n])
            starts.append(start)
        device = self.device
        num_new = torch.tensor(scheduled.num_new_tokens, dtype=torch.int32)
        start_t = torch.tensor(starts, dtype=torch.int32)
        cu_seqlens_q = torch.zeros(len(starts) + 1, dtype=torch.int32)
        torch.cumsum(num_new, 0, out=cu_seqlens_q[1:])
        context_lens = start_t + num_new
        # Per token: which sequence it belongs to and its absolute position.
        seq_index = torch.repeat_interleave(torch.arange(len(starts)), num_new.long())
        positions = torch.arange(len(ids)) - cu_seqlens_q[:-1].long()[seq_index] + start_t.long()[seq_index]
        width = max(len(seq.block_table) for seq in scheduled.seqs)
        block_tables = torch.tensor([seq.block_table + [0] * (width - len(seq.block_table))
                                     for seq in scheduled.seqs], dtype=torch.int32)
        blocks = block_tables[seq_index, positions // self.block_size].long()
        slot_mapping = blocks * self.block_size + positions % self.block_size
        meta = AttentionMetadata(
            slot_mapping=slot_mapping.to(device), block_tables=block_tables.to(device),
            cu_seqlens_q=cu_seqlens_q.to(device), context_lens=context_lens.to(device),
            max_seqlen_q=int(num_new.max()), max_context_len=int(context_lens.max()))
        input_ids = torch.tensor(ids, dtype=torch.long, device=device)
        return input_ids, positions.to(device), meta
