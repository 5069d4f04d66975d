"""Continuous batching: which sequences compute how many tokens in the next forward pass.

The scheduler only moves sequences between queues and asks the block manager for room; it knows
nothing about tensors, sampling or text.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from framework.engine.block_manager import BlockManager
from framework.engine.sequence import Sequence, SequenceStatus
from shared import EngineConfig


@dataclass(slots=True)
class SchedulerOutput:
    # Sequences in this step's batch, in batch order (their tokens are laid out back to back).
    seqs: list[Sequence] = field(default_factory=list)
    # Tokens each sequence computes this step, from its num_computed_tokens on (1 for a decode).
    num_new_tokens: list[int] = field(default_factory=list)
    # (src, dst) KV blocks to copy before the forward pass: copy-on-write of shared partial blocks.
    block_copies: list[tuple[int, int]] = field(default_factory=list)
    # Sequences sent back to waiting this step (their blocks are freed; recomputed later).
    preempted: list[Sequence] = field(default_factory=list)

    @property
    def num_batched_tokens(self) -> int:
        return sum(self.num_new_tokens)


class Scheduler:
    def __init__(self, config: EngineConfig, block_manager: BlockManager):
        self.max_num_seqs = config.max_num_seqs
        self.max_num_batched_tokens = config.max_num_batched_tokens
        self.chunked_prefill = config.enable_chunked_prefill
        self.aging_steps = config.priority_aging_steps
        self.block_manager = block_manager
        self.waiting: list[Sequence] = []
        self.running: list[Sequence] = []  # in admission order: the last one is preempted first
        self.num_steps = 0
        self.num_preemptions = 0

    def add(self, seq: Sequence) -> None:
        seq.arrival_step = self.num_steps
        self.waiting.append(seq)

    def schedule(self) -> SchedulerOutput:
        """Pick this step's work. There is no prefill phase nor decode phase: running sequences go
        first (a decode token or the next chunk of a long prompt), then waiting ones are admitted
        by priority while the token budget, the sequence cap and the block pool allow. When blocks
        run out, the most recently admitted sequence is preempted and recomputed later, so older
        requests keep making progress."""
        out, budget = SchedulerOutput(), self.max_num_batched_tokens
        for seq in list(self.running):
            if budget == 0 or seq.status != SequenceStatus.RUNNING:
                continue
            num_new = self._chunk(seq.num_pending_tokens, budget)
            while num_new and not self.block_manager.can_append(seq, num_new):
                self._preempt(self.running[-1], out)
                if seq.status != SequenceStatus.RUNNING:
                    break
            else:
                if num_new:
                    out.block_copies += self.block_manager.append(seq, num_new)
                    budget = self._add_to_batch(out, seq, num_new, budget)
        self.waiting.sort(key=self._waiting_key)
        while self.waiting and budget and len(self.running) < self.max_num_seqs and not out.preempted:
            seq = self.waiting[0]
            num_cached = len(self.block_manager.cached_prefix(seq)) * self.block_manager.block_size
            num_new = self._chunk(seq.target_num_computed - num_cached, budget)
            if self.chunked_prefill:  # a chunk the pool can hold now beats waiting for a big one
                num_new = min(num_new, self.block_manager.num_free_blocks * self.block_manager.block_size)
            if not num_new or not self.block_manager.can_allocate(seq, num_new):
                break
            self.block_manager.allocate(seq, num_new)
            seq.status = SequenceStatus.RUNNING
            self.running.append(self.waiting.pop(0))
            budget = self._add_to_batch(out, seq, num_new, budget)
        self.num_steps += 1
        return out

    def _chunk(self, num_pending: int, budget: int) -> int:
        """Tokens to compute now: all pending, or a chunk when chunked prefill is on, else none."""
        return num_pending if num_pending <= budget else (budget if self.chunked_prefill else 0)

    def _add_to_batch(self, out: SchedulerOutput, seq: Sequence, num_new: int, budget: int) -> int:
        out.seqs.append(seq)
        out.num_new_tokens.append(num_new)
        return budget - num_new

    def _waiting_key(self, seq: Sequence) -> tuple[int, int]:
        # Aging: every `aging_steps` steps spent waiting is worth one priority level.
        return seq.priority - (self.num_steps - seq.arrival_step) // self.aging_steps, seq.seq_id

    def _preempt(self, seq: Sequence, out: SchedulerOutput) -> None:
        self.running.remove(seq)
        self.block_manager.free(seq)
        seq.reset_for_recompute()
        self.waiting.append(seq)
        out.preempted.append(seq)
        self.num_preemptions += 1

    # ---- called by the engine between steps
    def replace(self, parent: Sequence, children: list[Sequence]) -> None:
        """Swap a forked parent for its children (which already share its blocks)."""
        index = self.running.index(parent)
        self.running[index:index + 1] = children
        self.block_manager.free(parent)

    def finish(self, seq: Sequence) -> None:
        """Remove a sequence (finished or aborted) from whichever queue holds it; free its blocks."""
        if seq in self.running:
            self.running.remove(seq)
        elif seq in self.waiting:
            self.waiting.remove(seq)
        self.block_manager.free(seq)
        seq.status = SequenceStatus.FINISHED

    def preempt_all(self) -> None:
        """Send every running sequence back to waiting (used when the model is swapped)."""
        for seq in list(reversed(self.running)):
            self._preempt(seq, SchedulerOutput())
