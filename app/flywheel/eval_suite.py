"""The demo model's own suite: task cases (the held-out made-up-capitals family, asked with
phrasings the simulated corrections never used: what the proof benchmark measures), regression
cases (every family of the demo corpus: the gate's extra suite when the base is the demo model),
held-out conversations and replay conversations.
"""
from __future__ import annotations

from dataclasses import dataclass

from app.demo.corpus import eval_prompts, generate_corpus
from app.demo.facts import CAPITAL_ANSWER, CAPITAL_HELD_OUT_PHRASINGS, MADE_UP_CAPITALS
from model.evaluation import EvalCase

REGRESSION_FAMILIES = ("arithmetic", "unit_conversion", "dates", "capital", "flywheel_faq",
                       "copying")


@dataclass(slots=True)
class EvalSuite:
    tasks: dict[str, list[EvalCase]]
    regression: dict[str, list[EvalCase]]
    held_out: list[list[dict]]
    replay: list[list[dict]]


def made_up_capital_cases(phrasings=CAPITAL_HELD_OUT_PHRASINGS) -> list[EvalCase]:
    return [EvalCase([{"role": "user", "content": p.format(country=country)}], capital)
            for country, capital in MADE_UP_CAPITALS.items() for p in phrasings]


def made_up_capital_answer(country: str) -> str:
    return CAPITAL_ANSWER.format(country=country, capital=MADE_UP_CAPITALS[country])


def demo_suite(cases_per_family: int, replay_conversations: int) -> EvalSuite:
    # Seeds differ from the demo model's training corpus seed, so these are fresh samples.
    # One pooled suite: per-family suites of a few dozen cases move by several points on a single
    # answer, too coarse for a 2-point gate.
    regression = {"original_domain": [
        EvalCase([{"role": "user", "content": q}], a) for i, family in enumerate(REGRESSION_FAMILIES)
        for q, a in eval_prompts(family, cases_per_family, seed=900 + i)]}
    return EvalSuite(tasks={"made_up_capitals": made_up_capital_cases()}, regression=regression,
                     held_out=generate_corpus(120, seed=777),
                     replay=generate_corpus(replay_conversations, seed=555))
