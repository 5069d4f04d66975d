"""Krippendorff's alpha and per-question agreement against hand-computed textbook values and the
`krippendorff` PyPI package (an independent implementation) as a reference."""
import random

import krippendorff
import numpy as np
import pytest

from app.annotation.agreement import Answer, agreement_by_question, question_agreement
from app.annotation.alpha import Level, krippendorff_alpha
from app.annotation.questions import parse_questions

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the example with 4 observers,
# 12 units and missing values (None); the paper gives alpha = 0.743 nominal, 0.815 ordinal,
# 0.849 interval.
RELIABILITY_DATA = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]


def _units(data: list[list]) -> list[list]:
    return [[row[u] for row in data if row[u] is not None] for u in range(len(data[0]))]


def _reference(data: list[list], level: str) -> float:
    matrix = np.array([[np.nan if v is None else v for v in row] for row in data], dtype=float)
    return krippendorff.alpha(reliability_data=matrix, level_of_measurement=level)


@pytest.mark.parametrize("level, published", [(Level.NOMINAL, 0.743), (Level.ORDINAL, 0.815),
                                              (Level.INTERVAL, 0.849)])
def test_alpha_matches_the_published_example(level, published):
    assert krippendorff_alpha(_units(RELIABILITY_DATA), level) == pytest.approx(published, abs=5e-4)


def test_alpha_by_hand_two_coders_nominal():
    # units (a,a) (a,b) (b,b): o_aa = o_bb = 2, o_ab = o_ba = 1, n_a = n_b = 3, n = 6
    # alpha = 1 - (n - 1) * (o_ab + o_ba) / (n_a n_b + n_b n_a) = 1 - 5 * 2 / 18
    assert krippendorff_alpha([["a", "a"], ["a", "b"], ["b", "b"]]) == pytest.approx(1 - 10 / 18)
    assert krippendorff_alpha([["a", "a"], ["b"]]) is None  # one value kind only: undefined
    assert krippendorff_alpha([["a"], ["b"]]) is None  # nothing pairable


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("level", list(Level))
def test_alpha_agrees_with_the_krippendorff_package(seed, level):
    rng = random.Random(seed)
    num_coders, num_units = rng.randint(2, 6), rng.randint(5, 40)
    truth = [rng.randint(1, 5) for _ in range(num_units)]
    data = [[None if rng.random() < 0.25 else (t if rng.random() < 0.6 else rng.randint(1, 5)) for t in truth]
            for _ in range(num_coders)]
    expected = _reference(data, level.value)
    assert krippendorff_alpha(_units(data), level) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def _answers(question: str, by_annotator: dict[str, list]) -> list[Answer]:
    return [Answer(f"r{i}", annotator, {question: value}) for annotator, values in by_annotator.items()
            for i, value in enumerate(values) if value is not None]


def test_cohens_kappa_for_two_annotators_textbook_example():
    # 50 items: both yes 20, A yes B no 5, A no B yes 10, both no 15 -> p_o = 0.7,
    # p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5, kappa = (0.7 - 0.5) / 0.5 = 0.4
    first = ["yes"] * 25 + ["no"] * 25
    second = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    (question,) = parse_questions([{"name": "ok", "kind": "label", "options": ["yes", "no"]}])
    result = question_agreement(question, _answers("ok", {"a": first, "b": second}))
    assert result.cohens_kappa == pytest.approx(0.4)
    assert result.percent_agreement == pytest.approx(70.0)
    assert result.items_with_overlap == 50 and result.num_annotators == 2
    as_numbers = [[1 if v == "yes" else 0 for v in coder] for coder in (first, second)]
    assert result.alpha["nominal"] == pytest.approx(_reference(as_numbers, "nominal"))
    three = question_agreement(question, _answers("ok", {"a": first, "b": second, "c": second}))
    assert three.cohens_kappa is None and three.alpha["nominal"] is not None  # kappa is two-rater only


def test_each_question_kind_becomes_the_right_units():
    questions = parse_questions([
        {"name": "quality", "kind": "rating", "scale": 5},
        {"name": "issues", "kind": "multi_label", "options": ["wrong", "rude", "long"]},
        {"name": "best", "kind": "ranking"},
        {"name": "rewrite", "kind": "text"}])
    answers = [
        Answer("r1", "a", {"quality": 4, "issues": ["wrong"], "best": ["x", "y", "z"], "rewrite": "Fine. "}),
        Answer("r1", "b", {"quality": 5, "issues": ["wrong", "long"], "best": ["y", "x", "z"], "rewrite": "Fine."}),
        Answer("r1", "c", {"quality": 4, "issues": [], "best": ["x", "y", "z"], "rewrite": "Other"}),
        Answer("r2", "a", {"quality": 1, "issues": ["rude"], "best": ["p", "q"], "rewrite": "No"}),
        Answer("r2", "b", {"quality": 2, "issues": ["rude"], "best": ["p", "q"], "rewrite": "No"}),
    ]
    rating, issues, best, rewrite = agreement_by_question(questions, answers)
    assert rating.alpha["ordinal"] == pytest.approx(krippendorff_alpha([[4, 5, 4], [1, 2]], Level.ORDINAL))
    assert rating.alpha["interval"] == pytest.approx(_reference(
        [[4, 1], [5, 2], [4, None]], "interval"))
    # multi-label: one binary unit per (record, option); coders a, b, c over r1 x 3 options + r2 x 3
    binary = [[1, 0, 0, 0, 1, 0], [1, 0, 1, 0, 1, 0], [0, 0, 0, None, None, None]]
    assert issues.alpha["nominal"] == pytest.approx(_reference(binary, "nominal"))
    # ranking: one unit per (record, candidate), the position; ordinal
    positions = [[1, 2, 3, 1, 2], [2, 1, 3, 1, 2], [1, 2, 3, None, None]]
    assert best.alpha["ordinal"] == pytest.approx(_reference(positions, "ordinal"))
    assert rewrite.alpha == {} and rewrite.cohens_kappa is None
    assert rewrite.percent_agreement == pytest.approx(100 * 2 / 4)  # r1: a=b only of 3 pairs; r2: 1 of 1
    assert rating.items_with_overlap == 2 and rating.num_annotators == 3
