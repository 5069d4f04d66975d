"""Draft-model proposals: a smaller model with the target's vocabulary proposes k tokens.

The draft keeps its own paged KV pool and a shadow `Sequence` per target sequence. Before each
proposal the shadow is synced to the target's tokens: its cache stays valid up to the first token
where they differ (the first rejected draft), so only the tokens the draft has not seen are
computed. Then k batched decode passes of the draft each add one token per sequence: greedy rows
take the draft's argmax; sampled rows draw from the draft's distribution under the request's own
temperature / top-k / top-p / min-p and hand it to the verifier as q (rejection.py).
"""
from __future__ import annotations

import torch

from framework.engine.block_manager import BlockManager
from framework.engine.model_runner import ModelRunner
from framework.engine.scheduler import SchedulerOutput
from framework.engine.sequence import Sequence
from framework.engine.speculative.proposal import Proposal
from framework.engine.speculative.rejection import draw, target_probs
from framework.layers import attention_metadata
from shared import CausalLM


class DraftModelProposer:
    def __init__(self, model: CausalLM, num_blocks: int, block_size: int):
        # The sampler is never used: proposals are drawn here, from the draft's logits.
        self.model, self.runner = model, ModelRunner(model, None, num_blocks, block_size)
        self.block_manager = BlockManager(num_blocks, block_size, enable_prefix_caching=False)
        self.shadows: dict[int, Sequence] = {}  # target seq_id -> the draft's copy

    def forget(self, live_seq_ids: set[int]) -> None:
        for seq_id in [s for s in self.shadows if s not in live_seq_ids]:
            self.block_manager.free(self.shadows.pop(seq_id))

    @torch.inference_mode()
    def propose(self, seqs: list[Sequence], max_num_tokens: list[int]) -> list[Proposal]:
        shadows = [self._sync(seq) for seq in seqs]
        drafts: list[list[int]] = [[] for _ in seqs]
        probs: list[list[torch.Tensor]] = [[] for _ in seqs]
        for step in range(max(max_num_tokens)):
            rows = [i for i, k in enumerate(max_num_tokens) if k > step and shadows[i] is not None]
            rows = [i for i in rows if self._make_room(seqs[i], shadows, i)]
            if not rows:
                break
            logits = self._forward([shadows[i] for i in rows])  # (R, V)
            for j, i in enumerate(rows):
                token, q = self._choose(logits[j], seqs[i])
                shadows[i].append_token(token)
                drafts[i].append(token)
                if q is not None:
                    probs[i].append(q)
        return [Proposal(d, torch.stack(p) if p else None) for d, p in zip(drafts, probs)]

    def _sync(self, seq: Sequence) -> Sequence:
        """The draft's copy of `seq`, its cache cut back to the tokens both still agree on."""
        shadow = self.shadows.get(seq.seq_id)
        if shadow is None:
            shadow = self.shadows[seq.seq_id] = Sequence(seq.request_id, seq.token_ids, seq.params)
            return shadow
        same = _common_prefix_len(shadow.token_ids, seq.token_ids)
        shadow.num_computed_tokens = min(shadow.num_computed_tokens, same)
        shadow.token_ids = list(seq.token_ids)
        self.block_manager.truncate(shadow)
        return shadow

    def _make_room(self, seq: Sequence, shadows: list[Sequence | None], i: int) -> bool:
        shadow = shadows[i]
        if self.block_manager.can_append(shadow, shadow.num_pending_tokens):
            self.block_manager.append(shadow, shadow.num_pending_tokens)
            return True
        self.block_manager.free(self.shadows.pop(seq.seq_id))  # no room: no proposal this step
        shadows[i] = None
        return False

    def _forward(self, shadows: list[Sequence]) -> torch.Tensor:
        """Compute every shadow's pending tokens; (R, V) logits of each one's last token."""
        scheduled = SchedulerOutput(shadows, [s.num_pending_tokens for s in shadows])
        input_ids, positions, meta = self.runner._prepare(scheduled)
        with attention_metadata(meta):
            hidden = self.model(input_ids, positions)  # (T, H)
        for shadow, n in zip(shadows, scheduled.num_new_tokens):
            shadow.num_computed_tokens += n
        last_rows = meta.cu_seqlens_q[1:].to(torch.long) - 1
        return self.model.compute_logits(hidden.index_select(0, last_rows))

    @staticmethod
    def _choose(logits: torch.Tensor, seq: Sequence) -> tuple[int, torch.Tensor | None]:
        if seq.params.greedy:
            return int(logits.argmax()), None
        q = target_probs(logits.unsqueeze(0), [seq.params])[0]
        return draw(q, seq.generator), q


def _common_prefix_len(a: list[int], b: list[int]) -> int:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))
