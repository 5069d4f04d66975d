"""This platform's loaded model as an lm-evaluation-harness `LM`, for the gate's lm-eval suites.

In process rather than `local-completions` against a server: the gate already holds the model
(`scoring.ModelScorer`), and a server per model would cost a port, a thread and an engine for a
few hundred forward passes. Token ids follow lm_eval's own causal recipe (`TemplateLM`: the whole
string encoded once and split at the context's length, with BOS when the caller does not say
otherwise, as `hf` encodes with the tokenizer's defaults), so the log-likelihoods are the ones its
`hf` backend computes on the same weights. Only log-likelihood requests are served:
registration accepts multiple-choice tasks only (`app.flywheel.lm_eval_tasks`).
"""
from __future__ import annotations

from lm_eval.api.model import TemplateLM

MICRO_BATCH = 32


class PlatformLM(TemplateLM):
    """`model` / `tokenizer` as `model.loader.load_model` returns them (eval mode)."""

    def __init__(self, model, tokenizer) -> None:
        super().__init__()
        self.model, self._tokenizer = model, tokenizer

    @property
    def eot_token_id(self) -> int:
        return self._tokenizer.eos_token_ids[0]

    @property
    def prefix_token_id(self) -> int:  # an empty context is conditioned on BOS, as `hf` does
        bos = self._tokenizer.bos_token_id
        return self.eot_token_id if bos is None else bos

    def tok_encode(self, string: str, add_special_tokens: bool | None = None,
                   **kwargs) -> list[int]:
        return self._tokenizer.encode(string, add_bos=add_special_tokens is not False)

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs):
        """(sum of continuation log-probs, whether greedy decoding yields the continuation) per
        request, from one packed forward pass per micro-batch."""
        import torch

        from framework.train.data import completion_sequence, pack
        from framework.train.packing import packed_attention

        out: list[tuple[float, bool]] = []
        with torch.no_grad():
            for start in range(0, len(requests), MICRO_BATCH):
                chunk = requests[start:start + MICRO_BATCH]
                batch = pack([completion_sequence(ctx, cont) for _, ctx, cont in chunk])
                with packed_attention(batch.seq_lens):
                    hidden = self.model(batch.input_ids, batch.positions)
                logps = torch.log_softmax(self.model.compute_logits(hidden).float(), dim=-1)
                picked = logps.gather(-1, batch.target_ids.unsqueeze(-1)).squeeze(-1)
                greedy = logps.argmax(-1) == batch.target_ids
                for k in range(len(chunk)):
                    rows = (batch.seq_index == k) & (batch.target_mask > 0)
                    out.append((float(picked[rows].sum()), bool(greedy[rows].all())))
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError("the gate runs multiple-choice lm-eval tasks only")

    def generate_until(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError("the gate runs multiple-choice lm-eval tasks only")
