"""One sequence being generated: its tokens, how many have KV in the cache, and its blocks.

A request with n samples owns n sequences (after a shared prompt prefill, see `Sequence.fork`).
The sequence knows nothing about text: detokenization lives in `detokenizer.py`.
"""
from __future__ import annotations

import itertools
from enum import Enum, auto

import torch

from shared import SamplingParams

_seq_ids = itertools.count()


class SequenceStatus(Enum):
    WAITING = auto()
    RUNNING = auto()
    FINISHED = auto()


class Sequence:
    """Token ids (prompt + generated), KV bookkeeping and scheduling keys of one sample."""

    def __init__(self, request_id: str, prompt_token_ids: list[int], params: SamplingParams,
                 priority: int = 0, arrival_step: int = 0, sample_index: int = 0,
                 generator: torch.Generator | None = None, fork_into: int = 1):
        self.seq_id = next(_seq_ids)
        self.request_id = request_id
        self.sample_index = sample_index
        self.token_ids = list(prompt_token_ids)
        self.num_prompt_tokens = len(prompt_token_ids)
        self.num_computed_tokens = 0  # tokens whose K/V are in the cache
        self.num_cached_tokens = 0  # of the prompt, found in the prefix cache at admission
        self.block_table: list[int] = []
        self.block_digests: list[bytes] = []  # chained digests of full token blocks, filled lazily
        self.num_committed_blocks = 0  # leading blocks already offered to the prefix cache
        # per committed block: the prefix-cache entry holding that same prefix (None: none does)
        self.cache_entry_ids: list[int | None] = []
        self.status = SequenceStatus.WAITING
        self.params = params
        self.priority = priority  # lower is served first (vLLM's convention)
        self.arrival_step = arrival_step  # engine step at arrival, for aging
        self.generator = generator  # per-sample RNG so a seed reproduces whatever the batch
        # n > 1: this parent prefills the prompt but its last token, then forks into n samples
        # that share its blocks (copy-on-write), so the prompt is computed once.
        self.fork_into = fork_into
        # structured outputs: this sample's place in its grammar (framework.engine.structured);
        # None for a free sample. Advanced with every token the sample takes.
        self.grammar = None
        # the request's LoRA adapter (LoRARequest.lora_int_id); 0: the base model. It salts the
        # prefix cache: KV computed under one adapter is never another's.
        self.lora_id = 0
        # speculative decoding: draft tokens appended to token_ids for this step's verification
        # (none between steps), and the draft model's probabilities for them ((k, V) float32;
        # None: a deterministic proposal such as prompt lookup). See framework.engine.speculative.
        self.num_spec_tokens = 0
        self.spec_draft_probs = None

    def __len__(self) -> int:
        return len(self.token_ids)

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def num_output_tokens(self) -> int:
        return len(self.token_ids) - self.num_prompt_tokens

    @property
    def output_token_ids(self) -> list[int]:
        return self.token_ids[self.num_prompt_tokens:]

    @property
    def target_num_computed(self) -> int:
        """Tokens to have in the cache before this sequence samples (or forks)."""
        return self.num_tokens - 1 if self.fork_into > 1 else self.num_tokens

    @property
    def num_pending_tokens(self) -> int:
        return self.target_num_computed - self.num_computed_tokens

    @property
    def is_prefill(self) -> bool:
        return self.num_pending_tokens > 1

    @property
    def finished(self) -> bool:
        return self.status == SequenceStatus.FINISHED

    def append_token(self, token_id: int) -> None:
        self.token_ids.append(token_id)

    def drop_drafts(self, keep: int = 0) -> None:
        """Remove speculative draft tokens from the end of token_ids but the first `keep`."""
        num_dropped = self.num_spec_tokens - keep
        if num_dropped > 0:
            del self.token_ids[-num_dropped:]
            if self.spec_draft_probs is not None:
                self.spec_draft_probs = self.spec_draft_probs[:keep]
        self.num_spec_tokens = min(self.num_spec_tokens, keep)
        if not self.num_spec_tokens:
            self.spec_draft_probs = None

    def reset_for_recompute(self) -> None:
        """After preemption: the cache is gone; prompt and generated tokens are recomputed later."""
        self.drop_drafts()
        self.num_computed_tokens = 0
        self.num_cached_tokens = 0
        self.block_table = []
        self.num_committed_blocks = 0
        self.cache_entry_ids = []
        self.status = SequenceStatus.WAITING

    def fork(self, generators: list[torch.Generator | None]) -> list["Sequence"]:
        """n samples sharing this parent's computed prefix. The caller shares the blocks."""
        children = []
        for index, generator in enumerate(generators):
            child = Sequence(self.request_id, self.token_ids, self.params, self.priority,
                             self.arrival_step, index, generator)
            child.num_computed_tokens = self.num_computed_tokens
            child.num_cached_tokens = self.num_cached_tokens
            child.block_table = list(self.block_table)
            child.block_digests = list(self.block_digests)
            child.num_committed_blocks = self.num_committed_blocks
            child.cache_entry_ids = list(self.cache_entry_ids)
            child.lora_id = self.lora_id
            child.status = self.status
            children.append(child)
        return children
