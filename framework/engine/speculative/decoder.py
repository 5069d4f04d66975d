"""The engine's side of speculative decoding: which sequences speculate, and their drafts into
and out of a step.

A step with speculation, around the engine's schedule -> run -> postprocess:
1. `propose` (before scheduling): each eligible decode gets up to k drafts appended to its
   token_ids, so the scheduler sees 1 + k pending tokens and allocates blocks for them, and the
   runner lays them out like a prefill chunk: one batched forward pass scores every draft, beside
   prefills and plain decodes of requests that do not speculate.
2. `after_schedule`: drafts of sequences that did not get into the step (token budget,
   preemption) are dropped; a row that got only part of its tokens keeps the drafts that fit.
3. The runner hands the sampler k+1 rows per speculating sequence (see rejection.py).
4. `rollback` (before postprocess): every draft leaves token_ids and the step counts one computed
   token per speculating row; the kept drafts come back through the engine's usual token path
   (stop strings, EOS and max_tokens apply to each of them in order).
5. `advance` (after postprocess): the kept drafts' KV is valid, so it is counted as computed and
   offered to the prefix cache; the blocks past it (the rejected drafts' KV) go back to the pool.
"""
from __future__ import annotations

from framework.engine.block_manager import BlockManager
from framework.engine.sampler import SamplerOutput
from framework.engine.scheduler import SchedulerOutput
from framework.engine.sequence import Sequence
from framework.engine.speculative.draft_model import DraftModelProposer
from framework.engine.speculative.ngram import NgramProposer
from framework.engine.speculative.proposal import Proposer
from shared import CausalLM, EngineStats, SpeculativeConfig, SpeculativeMethod


class SpeculativeDecoder:
    def __init__(self, config: SpeculativeConfig, proposer: Proposer):
        self.config, self.proposer = config, proposer
        self._drafted: list[Sequence] = []  # sequences holding drafts in this step
        self._verified: list[tuple[Sequence, int]] = []  # (sequence, drafts kept), until `advance`
        self.num_drafts = self.num_draft_tokens = self.num_accepted_tokens = 0

    def speculates(self, seq: Sequence) -> bool:
        """Whether this sequence may take drafts. Anything that reshapes the target distribution
        per position (penalties, logit bias, grammars, min_tokens) or that reports per-token
        logprobs is served without speculation."""
        p = seq.params
        wanted = p.speculative if p.speculative is not None else self.config.enable_by_default
        return (wanted and seq.fork_into == 1 and seq.grammar is None and p.logprobs is None
                and not p.logit_bias and p.repetition_penalty == 1.0 and p.frequency_penalty == 0.0
                and p.presence_penalty == 0.0 and seq.num_output_tokens >= p.min_tokens)

    def propose(self, running: list[Sequence], max_model_len: int) -> None:
        """Before scheduling: append drafts to every eligible decode."""
        self.proposer.forget({seq.seq_id for seq in running})
        limit = self.config.disable_by_batch_size
        if limit is not None and len(running) > limit:
            return
        seqs, budgets = [], []
        for seq in running:
            if seq.num_pending_tokens != 1 or not self.speculates(seq):
                continue
            budget = min(self.config.num_speculative_tokens, max_model_len - seq.num_tokens)
            if seq.params.max_tokens is not None:  # the step's last token needs no draft
                budget = min(budget, seq.params.max_tokens - seq.num_output_tokens - 1)
            if budget > 0:
                seqs.append(seq)
                budgets.append(budget)
        if not seqs:
            return
        for seq, proposal in zip(seqs, self.proposer.propose(seqs, budgets)):
            if proposal.token_ids:
                seq.token_ids.extend(proposal.token_ids)
                seq.num_spec_tokens = len(proposal.token_ids)
                seq.spec_draft_probs = proposal.probs
                self._drafted.append(seq)

    def after_schedule(self, scheduled: SchedulerOutput) -> None:
        num_new = {seq.seq_id: n for seq, n in zip(scheduled.seqs, scheduled.num_new_tokens)}
        for seq in self._drafted:
            seq.drop_drafts(keep=max(num_new.get(seq.seq_id, 0) - 1, 0))
        self._drafted = [seq for seq in self._drafted if seq.num_spec_tokens]

    def rollback(self, scheduled: SchedulerOutput, seqs: list[Sequence],
                 samples: SamplerOutput) -> tuple[int, int]:
        """After the forward pass: drafts out of token_ids and out of the step's computed count.
        Returns this step's (drafts kept, drafts rejected)."""
        num_kept_total, num_rejected_total = 0, 0
        kept = {seq.seq_id: len(ids) for seq, ids in zip(seqs, samples.accepted_draft_ids or [])}
        for i, seq in enumerate(scheduled.seqs):
            if seq.num_spec_tokens:
                num_kept = kept.get(seq.seq_id, 0)
                scheduled.num_new_tokens[i] -= seq.num_spec_tokens
                self.num_drafts += 1
                self.num_draft_tokens += seq.num_spec_tokens
                self.num_accepted_tokens += num_kept
                self._verified.append((seq, num_kept))
                num_kept_total += num_kept
                num_rejected_total += seq.num_spec_tokens - num_kept
                seq.drop_drafts()
        self._drafted = []
        return num_kept_total, num_rejected_total

    def advance(self, block_manager: BlockManager) -> None:
        """After the engine appended the kept drafts: their KV counts; the rest is released."""
        for seq, num_kept in self._verified:
            if not seq.finished:  # a finished sequence already returned all its blocks
                seq.num_computed_tokens += num_kept
                block_manager.commit(seq)
                block_manager.truncate(seq)
        self._verified = []

    def fill(self, stats: EngineStats) -> None:
        stats.num_spec_drafts = self.num_drafts
        stats.num_spec_draft_tokens = self.num_draft_tokens
        stats.num_spec_accepted_tokens = self.num_accepted_tokens


class NoSpeculation:
    """The engine's decoder when speculative decoding is off: every hook does nothing."""

    def speculates(self, seq: Sequence) -> bool:
        return False

    def propose(self, running: list[Sequence], max_model_len: int) -> None:
        pass

    def after_schedule(self, scheduled: SchedulerOutput) -> None:
        pass

    def rollback(self, scheduled: SchedulerOutput, seqs: list[Sequence],
                 samples: SamplerOutput) -> tuple[int, int]:
        return 0, 0

    def advance(self, block_manager: BlockManager) -> None:
        pass

    def fill(self, stats: EngineStats) -> None:
        pass


def build_decoder(config: SpeculativeConfig | None, target: CausalLM, draft_model: CausalLM | None,
                  num_target_blocks: int, block_size: int, max_num_seqs: int,
                  max_model_len: int) -> SpeculativeDecoder | NoSpeculation:
    """The decoder for `config` (None: off); a draft model's KV pool holds what the target's can
    plus k tokens per sequence (its drafts), so it never runs out first."""
    if config is None:
        if draft_model is not None:
            raise ValueError("a draft model was given without a speculative_config")
        return NoSpeculation()
    if config.method == SpeculativeMethod.NGRAM:
        if draft_model is not None:
            raise ValueError("speculative_config.method 'ngram' takes no draft model")
        proposer = NgramProposer(config.prompt_lookup_min, config.prompt_lookup_max)
        return SpeculativeDecoder(config, proposer)
    if draft_model is None:
        raise ValueError("speculative_config.method 'draft_model' needs the draft model loaded")
    if draft_model is target:  # its attention layers would point at two KV pools at once
        raise ValueError("the draft model must be a separate instance from the target")
    if draft_model.config.vocab_size != target.config.vocab_size:
        raise ValueError(f"the draft model's vocabulary ({draft_model.config.vocab_size}) differs "
                         f"from the target's ({target.config.vocab_size})")
    if draft_model.config.max_position_embeddings < max_model_len:
        raise ValueError(f"the draft model holds {draft_model.config.max_position_embeddings} "
                         f"positions; the engine serves up to {max_model_len}")
    per_seq = -(-(config.num_speculative_tokens + 1) // block_size)
    return SpeculativeDecoder(config, DraftModelProposer(
        draft_model, num_target_blocks + max_num_seqs * per_seq, block_size))
