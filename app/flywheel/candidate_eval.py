"""Measure a candidate against its base for the gate: the taught skill on the snapshot's eval
side, and every regression suite. Each model is loaded once and scores everything; the two are
then compared item by item (`app.flywheel.significance`) and judged by `app.flywheel.gate`.

Regression items are scored by exact (normalized, contained) match when the reference is short
and by likelihood when it is long: a long answer that production gave and users liked will not
be reproduced word for word by any greedy decoder, but a candidate that forgot it finds it much
less likely. The candidate keeps a long item when its mean per-token log-probability is at most
LIKELIHOOD_MARGIN nats below the base's.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from app.flywheel.encode import style_of
from app.flywheel.gate import GateConfig, GateReport, SkillReport, SuiteReport, decide
from app.flywheel.grouping import SnapshotSplit, prompt_of, reference_of
from app.flywheel.lm_eval_tasks import LmEvalTask, run_task
from app.flywheel.scoring import EvalItem, Likelihood, ModelScorer, answer_matches, token_f1
from app.flywheel.significance import compare

logger = logging.getLogger(__name__)
SHORT_ANSWER_WORDS = 12
LIKELIHOOD_MARGIN = 0.3
PRODUCTION_SAMPLE = 256
PRODUCTION_SUITE = "production_answers"
CORRECTION_SOURCES = ("correction", "rewrite")


def is_short(reference: str) -> bool:
    return len(reference.split()) <= SHORT_ANSWER_WORDS


def _item(record: dict, prompt: list[dict], reference: str) -> EvalItem:
    return EvalItem(prompt, reference, style_of(record))


def correction_items(split: SnapshotSplit) -> list[EvalItem]:
    """Eval-side corrections and rewrites: what users said the answer should have been."""
    return [_item(r, r["messages"][:-1], r["messages"][-1]["content"]) for r in split.eval["sft"]
            if r.get("source", "correction") in CORRECTION_SOURCES]


def production_items(split: SnapshotSplit, limit: int = PRODUCTION_SAMPLE) -> list[EvalItem]:
    """A frozen sample of what production already does well: thumbs-up and accepted answers, and
    what earlier feedback taught (train-side corrections). Frozen: the sample is the first
    `limit` items by a hash of their content, so the same store gives the same items."""
    records = [*split.train["sft"], *[r for r in split.eval["sft"] if r.get("source") == "accepted"],
               *[r for side in (split.train, split.eval) for r in side["kto"] if r.get("label")]]
    items: dict[str, EvalItem] = {}
    for record in records:
        reference = reference_of(record)
        if reference:
            key = json.dumps([prompt_of(record), reference], sort_keys=True, ensure_ascii=False)
            items[hashlib.sha256(key.encode()).hexdigest()] = _item(record, prompt_of(record),
                                                                    reference)
    return [items[k] for k in sorted(items)[:limit]]


@dataclass(slots=True)
class _Scores:
    """One model's raw scores on everything the gate compares."""
    correction_answers: list[str]
    chosen: list[Likelihood | None]
    rejected: list[Likelihood | None]
    kto: list[Likelihood | None]
    suite_answers: dict[str, list[str | None]]  # None for long references
    suite_likelihoods: dict[str, list[Likelihood | None]]
    lm_eval_passes: dict[str, list[bool]]  # registered lm-eval task name -> per item, its metric


def _score(model_dir: str, corrections: list[EvalItem], split: SnapshotSplit,
           suites: dict[str, list[EvalItem]], lm_eval_tasks: Sequence[LmEvalTask] = ()) -> _Scores:
    scorer = ModelScorer(model_dir)
    lm_eval = {t.name: [r.passed for r in run_task(t, scorer.model, scorer.tokenizer)]
               for t in lm_eval_tasks}  # on the model already loaded for everything else
    dpo, kto = split.eval["dpo"], split.eval["kto"]
    chosen = scorer.likelihoods([_item(r, r["prompt"], r["chosen"][-1]["content"]) for r in dpo])
    rejected = scorer.likelihoods([_item(r, r["prompt"], r["rejected"][-1]["content"]) for r in dpo])
    answers, likelihoods = {}, {}
    for name, items in suites.items():
        short = [i for i in items if is_short(i.reference)]
        got = iter(scorer.answers(short))
        answers[name] = [next(got) if is_short(i.reference) else None for i in items]
        likelihoods[name] = scorer.likelihoods(items)
    return _Scores(
        correction_answers=scorer.answers(corrections), chosen=chosen, rejected=rejected,
        kto=scorer.likelihoods([_item(r, r["prompt"], r["completion"][-1]["content"]) for r in kto]),
        suite_answers=answers, suite_likelihoods=likelihoods, lm_eval_passes=lm_eval)


def _preference_passes(scores: _Scores) -> list[bool]:
    return [c is not None and r is not None and c.logp > r.logp
            for c, r in zip(scores.chosen, scores.rejected)]


def _kto_margin(scores: _Scores, records: list[dict]) -> float | None:
    good = [s.mean for s, r in zip(scores.kto, records) if s is not None and r.get("label")]
    bad = [s.mean for s, r in zip(scores.kto, records) if s is not None and not r.get("label")]
    if not good or not bad:
        return None
    return sum(good) / len(good) - sum(bad) / len(bad)


def _suite_passes(items: list[EvalItem], answers: list[str | None],
                  likelihoods: list[Likelihood | None],
                  base_likelihoods: list[Likelihood | None]) -> list[bool]:
    passes = []
    for item, answer, mine, base in zip(items, answers, likelihoods, base_likelihoods):
        if answer is not None:
            passes.append(answer_matches(answer, item.reference))
        else:  # long reference: judged relative to the base (which keeps it by definition)
            passes.append(mine is not None and (base is None or
                                                mine.mean >= base.mean - LIKELIHOOD_MARGIN))
    return passes


def _mean_f1(answers: list[str], items: list[EvalItem]) -> float | None:
    if not items:
        return None
    return sum(token_f1(a, i.reference) for a, i in zip(answers, items)) / len(items)


def _corrections_right(answers: list[str], corrections: list[EvalItem]) -> list[bool]:
    """A correction is learned when the answer says what it taught: with the prompt given, the
    words it adds to the prompt count (`scoring.answer_matches`), not an echoed subject."""
    return [answer_matches(a, i.reference, prompt="\n".join(m["content"] for m in i.prompt))
            for a, i in zip(answers, corrections)]


def _mean_loss(likelihoods: list[Likelihood | None]) -> float | None:
    known = [x for x in likelihoods if x is not None]
    tokens = sum(x.num_tokens for x in known)
    return -sum(x.logp for x in known) / tokens if tokens else None


def evaluate_candidate(base_dir: str, candidate_dir: str, split: SnapshotSplit,
                       extra_suites: dict[str, list[EvalItem]], config: GateConfig,
                       lm_eval_tasks: Sequence[LmEvalTask] = ()) -> GateReport:
    """Score base and candidate on the same items and decide (see `app.flywheel.gate`).
    Registered lm-eval tasks are suites too, named "lm-eval NAME", judged by the task's metric."""
    corrections = correction_items(split)
    suites = {PRODUCTION_SUITE: production_items(split), **extra_suites}
    suites = {name: items for name, items in suites.items() if items}
    base = _score(base_dir, corrections, split, suites, lm_eval_tasks)
    cand = _score(candidate_dir, corrections, split, suites, lm_eval_tasks)

    base_right = _corrections_right(base.correction_answers, corrections)
    cand_right = _corrections_right(cand.correction_answers, corrections)
    skill = SkillReport(
        num_groups=split.num_groups, num_eval_groups=split.num_eval_groups,
        corrections=compare(base_right, cand_right) if corrections else None,
        f1_before=_mean_f1(base.correction_answers, corrections),
        f1_after=_mean_f1(cand.correction_answers, corrections),
        preferences=compare(_preference_passes(base), _preference_passes(cand))
        if split.eval["dpo"] else None,
        kto_margin_before=_kto_margin(base, split.eval["kto"]),
        kto_margin_after=_kto_margin(cand, split.eval["kto"]))

    regression = []
    for name, items in suites.items():
        base_pass = _suite_passes(items, base.suite_answers[name], base.suite_likelihoods[name],
                                  base.suite_likelihoods[name])
        cand_pass = _suite_passes(items, cand.suite_answers[name], cand.suite_likelihoods[name],
                                  base.suite_likelihoods[name])
        if name == PRODUCTION_SUITE:  # what production already does well: where the base passes
            cand_pass = [c for b, c in zip(base_pass, cand_pass) if b]
            base_pass = [True] * len(cand_pass)
        if base_pass:
            regression.append(SuiteReport(name, compare(base_pass, cand_pass)))
    for task in lm_eval_tasks:
        regression.append(SuiteReport(task.suite_name, compare(base.lm_eval_passes[task.name],
                                                               cand.lm_eval_passes[task.name])))
    production = suites.get(PRODUCTION_SUITE)
    report = GateReport(
        skill=skill, regression=regression,
        held_out_loss_before=_mean_loss(base.suite_likelihoods[PRODUCTION_SUITE]) if production else None,
        held_out_loss_after=_mean_loss(cand.suite_likelihoods[PRODUCTION_SUITE]) if production else None)
    return decide(report, config)
