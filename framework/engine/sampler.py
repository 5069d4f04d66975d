"""Choose one token per sampling row: penalties, temperature, top-k/top-p/min-p, seeded draws.

Every row carries its own parameters, so one batched pass serves requests that asked for different
things. Randomness comes only from each sequence's own `torch.Generator` (chip `sample` draws with
an exponential race per row), so a seed gives the same tokens whatever else is in the batch.
Logprobs are those of the model's raw distribution (before penalties and temperature), as vLLM's.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from chip import dispatch
from framework.engine.logit_bias import apply_logit_bias, has_logit_bias
from framework.engine.sequence import Sequence
from framework.engine.speculative.rejection import verify
from framework.engine.structured import apply_grammar_mask
from shared import Logprob


@dataclass(slots=True)
class SamplerOutput:
    token_ids: list[int]  # one per row
    logprobs: list[dict[int, Logprob] | None]  # chosen token + top-n per row, None if not asked
    # speculative decoding: per row, the draft tokens verified and kept, emitted before
    # token_ids[row]; None when no row speculated
    accepted_draft_ids: list[list[int]] | None = None

    def tokens_of(self, row: int) -> list[int]:
        """The row's tokens in order: kept drafts, then the sampled token."""
        drafts = self.accepted_draft_ids[row] if self.accepted_draft_ids else []
        return [*drafts, self.token_ids[row]]


class Sampler:
    def __init__(self, eos_token_ids: list[int]):
        self.eos_token_ids = list(eos_token_ids)

    @torch.inference_mode()
    def __call__(self, logits: torch.Tensor, seqs: list[Sequence]) -> SamplerOutput:
        """logits (N, V) float32, one row per sequence in `seqs` -> one token per row. A sequence
        with draft tokens (speculative decoding) brings 1 + seq.num_spec_tokens rows instead."""
        if any(s.num_spec_tokens for s in seqs):
            verified = verify(logits, seqs, self._sample_plain)
            return SamplerOutput(verified.token_ids, verified.logprobs, verified.accepted_draft_ids)
        raw = logits
        if any(_has_penalty(s) for s in seqs):
            logits = self._apply_penalties(logits, seqs)
        if any(map(has_logit_bias, seqs)):
            logits = apply_logit_bias(logits, seqs)
        if any(s.num_output_tokens < s.params.min_tokens for s in seqs):
            logits = self._mask_stop_tokens(logits, seqs)
        if any(s.grammar is not None for s in seqs):  # structured outputs, masked last
            logits = apply_grammar_mask(logits, seqs, fallback=raw)
        tokens = self._choose(logits, seqs)
        token_list = tokens.tolist()
        return SamplerOutput(token_list, self._logprobs(raw, seqs, token_list))

    def _sample_plain(self, logits: torch.Tensor, seqs: list[Sequence]) -> tuple[list[int], list]:
        out = self(logits, seqs)
        return out.token_ids, out.logprobs

    def _choose(self, logits: torch.Tensor, seqs: list[Sequence]) -> torch.Tensor:
        tokens = logits.argmax(dim=-1)  # greedy rows keep this
        rows = [i for i, s in enumerate(seqs) if not s.params.greedy]
        if not rows:
            return tokens
        params = [seqs[i].params for i in rows]
        index = torch.tensor(rows, device=logits.device)
        temps = torch.tensor([p.temperature for p in params], device=logits.device).unsqueeze(1)
        scaled = logits.index_select(0, index) / temps  # (R, V)
        if any(p.top_k > 0 or p.top_p < 1.0 or p.min_p > 0.0 for p in params):
            scaled = dispatch("filter_logits", logits.device.type)(
                scaled,
                torch.tensor([p.top_k for p in params], device=logits.device),
                torch.tensor([p.top_p for p in params], device=logits.device),
                torch.tensor([p.min_p for p in params], device=logits.device))
        drawn = dispatch("sample", logits.device.type)(scaled.softmax(dim=-1),
                                                      [seqs[i].generator for i in rows])
        return tokens.index_copy(0, index, drawn)

    def _apply_penalties(self, logits: torch.Tensor, seqs: list[Sequence]) -> torch.Tensor:
        num_rows, vocab = logits.shape
        device = logits.device
        outputs = _padded([s.output_token_ids for s in seqs], vocab, device)  # (N, L), pad = vocab
        counts = torch.zeros(num_rows, vocab + 1, device=device)
        counts.scatter_add_(1, outputs, torch.ones_like(outputs, dtype=counts.dtype))
        counts = counts[:, :vocab]
        prompts = _padded([s.token_ids[:s.num_prompt_tokens] for s in seqs], vocab, device)
        seen = torch.zeros(num_rows, vocab + 1, dtype=torch.bool, device=device)
        seen.scatter_(1, prompts, True)
        seen = seen[:, :vocab] | (counts > 0)

        def column(name: str) -> torch.Tensor:
            return torch.tensor([getattr(s.params, name) for s in seqs], device=device).unsqueeze(1)

        rep = column("repetition_penalty")
        penalized = torch.where(logits > 0, logits / rep, logits * rep)
        logits = torch.where(seen, penalized, logits)
        logits = logits - column("frequency_penalty") * counts
        return logits - column("presence_penalty") * (counts > 0).float()

    def _mask_stop_tokens(self, logits: torch.Tensor, seqs: list[Sequence]) -> torch.Tensor:
        # min_tokens: no stop token (EOS included unless ignored) may be drawn before the minimum.
        logits = logits.clone()
        for i, s in enumerate(seqs):
            if s.num_output_tokens < s.params.min_tokens:
                stops = list(s.params.stop_token_ids) + ([] if s.params.ignore_eos else self.eos_token_ids)
                stops = [t for t in stops if t < logits.shape[1]]
                logits[i, stops] = float("-inf")
        return logits

    def _logprobs(self, raw: torch.Tensor, seqs: list[Sequence],
                  tokens: list[int]) -> list[dict[int, Logprob] | None]:
        wanted = [s.params.logprobs for s in seqs]
        result: list[dict[int, Logprob] | None] = [None] * len(seqs)
        rows = [i for i, n in enumerate(wanted) if n is not None]
        if not rows:
            return result
        index = torch.tensor(rows, device=raw.device)
        logprobs = raw.index_select(0, index).log_softmax(dim=-1)  # (R, V)
        chosen_ids = torch.tensor([tokens[i] for i in rows], device=raw.device).unsqueeze(1)
        chosen = logprobs.gather(1, chosen_ids)  # (R, 1)
        ranks = ((logprobs > chosen).sum(dim=1) + 1).tolist()
        top_n = max(wanted[i] for i in rows)
        top_values, top_ids = logprobs.topk(top_n, dim=-1) if top_n else (None, None)
        for j, i in enumerate(rows):
            entry = {tokens[i]: Logprob(float(chosen[j, 0]), ranks[j])}
            for rank in range(wanted[i]):
                token = int(top_ids[j, rank])
                entry.setdefault(token, Logprob(float(top_values[j, rank]), rank + 1))
            result[i] = entry
        return result


def _has_penalty(seq: Sequence) -> bool:
    p = seq.params
    return p.repetition_penalty != 1.0 or p.frequency_penalty != 0.0 or p.presence_penalty != 0.0


def _padded(rows: list[list[int]], pad: int, device: torch.device) -> torch.Tensor:
    width = max((len(r) for r in rows), default=0) or 1
    return torch.tensor([r + [pad] * (width - len(r)) for r in rows], dtype=torch.long, device=device)
