"""Inter-annotator agreement per question of an annotation dataset.

Each question kind becomes "units" that annotators gave values to, then the statistics run on them:
- rating: one unit per record, the rating (alpha ordinal and interval);
- label: one unit per record, the label (alpha nominal);
- multi_label: one unit per (record, option), 1 if chosen else 0 (alpha nominal, pooled);
- ranking: one unit per (record, candidate), its position (alpha ordinal);
- text: one unit per record, the stripped text; only exact percent agreement (alpha would only
  say whether two rewrites are identical, which percent agreement already does).
Cohen's kappa is given when exactly two annotators answered the question on shared records (it is
a two-rater statistic); Krippendorff's alpha for any number. Only submitted responses count.
This module knows nothing about the database.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from app.annotation.alpha import Level, krippendorff_alpha
from app.annotation.questions import Question, QuestionKind
from app.review.agreement import cohens_kappa

LEVELS = {QuestionKind.RATING: (Level.ORDINAL, Level.INTERVAL), QuestionKind.LABEL: (Level.NOMINAL,),
          QuestionKind.MULTI_LABEL: (Level.NOMINAL,), QuestionKind.RANKING: (Level.ORDINAL,),
          QuestionKind.TEXT: ()}


@dataclass(frozen=True, slots=True)
class Answer:
    record_id: str
    annotator: str
    values: dict[str, Any]  # question name -> validated answer (a submitted response)


@dataclass(frozen=True, slots=True)
class QuestionAgreement:
    question: str
    kind: QuestionKind
    num_annotators: int  # who answered this question at all
    items_with_overlap: int  # records with answers from 2+ annotators
    percent_agreement: float | None  # 0..100 over annotator pairs of the same unit
    cohens_kappa: float | None  # only with exactly two annotators on shared records
    alpha: dict[str, float | None] = field(default_factory=dict)  # level -> Krippendorff's alpha


def _units(question: Question, answers: list[Answer]) -> dict[tuple, dict[str, Any]]:
    """unit key -> annotator -> value."""
    units: dict[tuple, dict[str, Any]] = defaultdict(dict)
    for answer in answers:
        value = answer.values.get(question.name)
        if value is None:
            continue
        if question.kind is QuestionKind.MULTI_LABEL:
            for option in question.options:
                units[(answer.record_id, option)][answer.annotator] = int(option in value)
        elif question.kind is QuestionKind.RANKING:
            for position, candidate in enumerate(value, start=1):
                units[(answer.record_id, candidate)][answer.annotator] = position
        elif question.kind is QuestionKind.TEXT:
            units[(answer.record_id,)][answer.annotator] = " ".join(value.split())
        else:
            units[(answer.record_id,)][answer.annotator] = value
    return units


def _percent(units: dict[tuple, dict[str, Any]]) -> float | None:
    pairs = agree = 0
    for by_annotator in units.values():
        for a, b in combinations(sorted(by_annotator), 2):
            pairs += 1
            agree += by_annotator[a] == by_annotator[b]
    return 100.0 * agree / pairs if pairs else None


def _kappa(units: dict[tuple, dict[str, Any]]) -> float | None:
    shared = [v for v in units.values() if len(v) >= 2]
    annotators = {a for v in shared for a in v}
    if len(annotators) != 2:
        return None
    first, second = sorted(annotators)
    return cohens_kappa([v[first] for v in shared], [v[second] for v in shared])


def question_agreement(question: Question, answers: list[Answer]) -> QuestionAgreement:
    units = _units(question, answers)
    overlapping_records = {key[0] for key, v in units.items() if len(v) >= 2}
    values = [list(v.values()) for v in units.values()]
    is_text = question.kind is QuestionKind.TEXT
    return QuestionAgreement(
        question=question.name, kind=question.kind,
        num_annotators=len({a for v in units.values() for a in v}),
        items_with_overlap=len(overlapping_records), percent_agreement=_percent(units),
        cohens_kappa=None if is_text else _kappa(units),
        alpha={level.value: krippendorff_alpha(values, level) for level in LEVELS[question.kind]})


def agreement_by_question(questions: list[Question], answers: list[Answer]) -> list[QuestionAgreement]:
    """One row per question, in schema order."""
    return [question_agreement(question, answers) for question in questions]
