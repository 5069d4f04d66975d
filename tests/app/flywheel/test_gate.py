"""The gate's statistics and decision: exact McNemar tails against scipy-free reference values
(binomial sums written out), and the promote / reject rules."""
from __future__ import annotations

import math

from app.flywheel.gate import GateConfig, GateReport, SkillReport, SuiteReport, decide
from app.flywheel.scoring import answer_matches, token_f1
from app.flywheel.significance import binomial_tail, compare


def test_binomial_tail_matches_the_sum_of_binomial_probabilities():
    assert binomial_tail(0, 5) == 1.0
    assert binomial_tail(7, 7) == 0.5 ** 7
    assert math.isclose(binomial_tail(8, 10), (45 + 10 + 1) / 1024)


def test_compare_counts_discordant_pairs_and_brackets_the_change():
    base = [False] * 10 + [True] * 10
    cand = [True] * 8 + [False] * 2 + [True] * 9 + [False]
    o = compare(base, cand)
    assert (o.n, o.gained, o.lost, o.base_passed, o.candidate_passed) == (20, 8, 1, 10, 17)
    assert math.isclose(o.p_gain, binomial_tail(8, 9))
    assert o.change_low <= 7 / 20 <= o.change_high
    assert math.isclose(o.change_points, 35.0)


def _report(skill_base, skill_cand, suites=(), loss=(None, None)) -> GateReport:
    skill = SkillReport(num_groups=6, num_eval_groups=2,
                        corrections=compare(skill_base, skill_cand) if skill_base else None)
    return GateReport(skill=skill, regression=[SuiteReport(n, compare(b, c)) for n, b, c in suites],
                      held_out_loss_before=loss[0], held_out_loss_after=loss[1])


def test_a_significant_gain_without_regression_is_promoted():
    report = decide(_report([False] * 9, [True] * 7 + [False] * 2), GateConfig())
    assert report.passed
    assert report.reasons[0].startswith("learned: correction accuracy 0.0% -> 77.8% on 9")


def test_a_candidate_that_learned_nothing_is_not_promoted():
    report = decide(_report([False] * 9, [False] * 9), GateConfig())
    assert not report.passed and report.reasons[0].startswith("no measurable gain")
    few = decide(_report([False] * 3, [True] * 3), GateConfig())  # p = 1/8: not significant
    assert not few.passed
    empty = decide(_report([], []), GateConfig())
    assert not empty.passed and "holds no corrections" in empty.reasons[0]


def test_regression_needs_both_size_and_confidence():
    gain = ([False] * 9, [True] * 9)
    noise = ("small", [True] * 10, [True] * 9 + [False])  # 10 points, p = 0.5: noise
    real = ("domain", [True] * 200, [True] * 180 + [False] * 20)  # 10 points, p ~ 1e-6
    small_drop = ("big", [True] * 200, [True] * 197 + [False] * 3)  # 1.5 points
    assert decide(_report(*gain, [noise, small_drop]), GateConfig()).passed
    report = decide(_report(*gain, [real]), GateConfig())
    assert not report.passed and any(r.startswith("regressed: domain") for r in report.reasons)


def test_held_out_loss_is_only_a_sanity_check():
    gain = ([False] * 9, [True] * 9)
    # the case: 0.0594 -> 0.0773 is not a reason to reject
    assert decide(_report(*gain, loss=(0.0594, 0.0773)), GateConfig()).passed
    broken = decide(_report(*gain, loss=(1.2, 3.5)), GateConfig())
    assert not broken.passed and "sanity check failed" in broken.reasons[-1]


def test_answer_matching_rules():
    assert answer_matches("The capital of Zorbia is Vexhall.", "Vexhall")
    assert answer_matches("vexhall", "Vexhall.")
    assert not answer_matches("Vexhallia is nice", "Vexhall")  # whole words only
    assert answer_matches("Capital of Zorbia is Vexhall", "The capital of Zorbia is Vexhall.")
    assert not answer_matches("Zorbia has a capital", "The capital of Zorbia is Vexhall.")
    assert not answer_matches("Paris.", "The capital of Zorbia is Vexhall.")
    assert token_f1("a b c", "a b c") == 1.0 and token_f1("x", "a b") == 0.0


def test_preferences_decide_when_corrections_are_too_few_to_flip_but_did_not_get_worse():
    skill = SkillReport(num_groups=4, num_eval_groups=1,
                        corrections=compare([False] * 8, [True] * 3 + [False] * 5),  # p = 1/8
                        preferences=compare([False] * 8, [True] * 8))  # p = 1/256
    report = decide(GateReport(skill=skill, regression=[]), GateConfig())
    assert report.passed and report.reasons[0].startswith("learned: correction accuracy 0.0%")
    assert "preference accuracy 0.0% -> 100.0%" in report.reasons[0]
    worse = SkillReport(num_groups=4, num_eval_groups=1,
                        corrections=compare([True] * 2 + [False] * 6, [False] * 8),
                        preferences=compare([False] * 8, [True] * 8))
    assert not decide(GateReport(skill=worse, regression=[]), GateConfig()).passed
