"""Score one model on evaluation items: greedy answers and answer log-likelihoods.

An item is a prompt (messages in a `PromptStyle`) and a reference answer. `answer_matches` is the
pass rule for short answers: the normalized reference is contained in the normalized answer
(so "Vexhall." passes "The capital is Vexhall"), or the two agree on most of their words
(token F1 >= F1_PASS, for a reference that is a whole sentence worded slightly differently), or,
given the prompt, the answer holds every word the reference adds to the prompt (`new_words`): a
correction "The grobbit says Tillu." to "Which noise comes from the grobbit?" is learned by an
answer that says "Tillu" even when a small model misspells the made-up subject it echoes
("The grobit says Tillu." has token F1 0.75), and not by one that says another sound.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

from app.flywheel.encode import PromptStyle, answer_ids, prompt_ids
from app.flywheel.grouping import normalize

logger = logging.getLogger(__name__)
F1_PASS = 0.8
MAX_NEW_TOKENS = 256


@dataclass(frozen=True, slots=True)
class EvalItem:
    prompt: list[dict]
    reference: str
    style: PromptStyle = PromptStyle.CHAT


def token_f1(answer: str, reference: str) -> float:
    """Harmonic mean of word precision and recall (SQuAD's answer F1)."""
    got, want = normalize(answer).split(), normalize(reference).split()
    if not got or not want:
        return float(got == want)
    common = sum((Counter(got) & Counter(want)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(got), common / len(want)
    return 2 * precision * recall / (precision + recall)


def new_words(reference: str, prompt: str) -> frozenset[str]:
    """The reference's words that the prompt does not already hold: what a correction teaches."""
    return frozenset(normalize(reference).split()) - frozenset(normalize(prompt).split())


def answer_matches(answer: str, reference: str, prompt: str | None = None) -> bool:
    """The pass rule (module docstring); `prompt` enables the new-words rule."""
    want = normalize(reference)
    if want and f" {want} " in f" {normalize(answer)} ":
        return True
    if prompt is not None:
        taught = new_words(reference, prompt)
        if taught and taught <= frozenset(normalize(answer).split()):
            return True
    return token_f1(answer, reference) >= F1_PASS


@dataclass(frozen=True, slots=True)
class Likelihood:
    logp: float  # summed log-probability of the answer tokens
    num_tokens: int

    @property
    def mean(self) -> float:
        return self.logp / max(self.num_tokens, 1)


class ModelScorer:
    """One loaded model directory; answers and likelihoods in batches."""

    def __init__(self, model_dir: str) -> None:
        from model.loader import load_model

        loaded = load_model(model_dir, dtype="float32")
        self.model, self.tokenizer = loaded.model, loaded.tokenizer
        self.model.eval()

    def answers(self, items: list[EvalItem]) -> list[str]:
        """Greedy answers, long enough for each reference plus some slack."""
        from model.evaluation import engine_generate

        if not items:
            return []
        prompts = [prompt_ids(self.tokenizer, i.prompt, i.style) for i in items]
        budget = max(len(self.tokenizer.encode(i.reference, add_bos=False)) for i in items) + 16
        outs = engine_generate(self.model, self.tokenizer, prompts, min(budget, MAX_NEW_TOKENS))
        return [self.tokenizer.decode(ids) for ids in outs]

    def likelihoods(self, items: list[EvalItem], answers: list[str] | None = None,
                    micro_batch_size: int = 32) -> list[Likelihood | None]:
        """log p(answer | prompt) per item (the reference unless `answers` is given); None for an
        answer that does not tokenize as a continuation of its prompt."""
        import torch

        from framework.train import losses
        from framework.train.data import completion_sequence, pack

        texts = answers if answers is not None else [i.reference for i in items]
        sequences, index = [], []
        for n, (item, text) in enumerate(zip(items, texts)):
            try:
                sequences.append(completion_sequence(*answer_ids(self.tokenizer, item.prompt, text,
                                                                 item.style)))
                index.append(n)
            except ValueError as e:
                logger.warning("item %d not scored by likelihood: %s", n, e)
        out: list[Likelihood | None] = [None] * len(items)
        with torch.no_grad():
            for start in range(0, len(sequences), micro_batch_size):
                batch = pack(sequences[start:start + micro_batch_size])
                token_logp = losses.token_logps(self.model, batch)
                sums = losses.sequence_logps(token_logp, batch).tolist()
                for k, total in enumerate(sums):
                    seq = sequences[start + k]
                    out[index[start + k]] = Likelihood(total, sum(seq.loss_mask))
        return out
