"""The demo model on its own domain: the flywheel's regression suite, per family, plus the held-out
made-up capitals (which the base must NOT know: the flywheel proof teaches them), plus tool use
with the demo's calculator and unit converter (`app.demo.tool_use.tool_eval_cases`: the right
call, the answer after the result, no call when the tools do not help).

Same cases and scoring as the gate (`app.flywheel.eval_suite.demo_suite`, `model.evaluation`
greedy answers, "contains the expected text"); printed per family with the wrong answers.

    .venv/bin/python benchmarks/demo_model.py [--model app/demo/model] [--cases-per-family 40]
"""
from __future__ import annotations

import argparse
import json
import logging
import time

from app.demo.recipe import DEMO_MODEL_DIR
from app.flywheel.eval_suite import REGRESSION_FAMILIES, made_up_capital_cases
from app.demo.corpus import eval_prompts
from app.demo.tool_use import tool_eval_cases
from model.evaluation import EvalCase, answers
from model.loader import load_model

logger = logging.getLogger(__name__)


def family_cases(cases_per_family: int) -> dict[str, list[EvalCase]]:
    """The regression suite of `demo_suite`, kept per family (same seeds: 900 + family index)."""
    return {family: [EvalCase([{"role": "user", "content": q}], a)
                     for q, a in eval_prompts(family, cases_per_family, seed=900 + i)]
            for i, family in enumerate(REGRESSION_FAMILIES)}


def score(model, tokenizer, cases: list[EvalCase]) -> tuple[float, list[tuple[str, str, str]]]:
    got = answers(model, tokenizer, cases)
    wrong = [(c.messages[-1]["content"], c.expected, a) for c, a in zip(cases, got)
             if c.expected.lower() not in a.lower()]
    return 1 - len(wrong) / len(cases), wrong


def measure(model_dir: str, cases_per_family: int) -> dict:
    loaded = load_model(model_dir)
    started = time.perf_counter()
    families, wrong_all, total, right = {}, {}, 0, 0
    for family, cases in family_cases(cases_per_family).items():
        acc, wrong = score(loaded.model, loaded.tokenizer, cases)
        families[family] = round(acc, 4)
        wrong_all[family] = wrong
        total += len(cases)
        right += len(cases) - len(wrong)
    made_up, _ = score(loaded.model, loaded.tokenizer, made_up_capital_cases())
    tool_use = {}
    for check, cases in tool_eval_cases(cases_per_family, seed=950).items():
        try:
            acc, wrong_all[f"tool_{check}"] = score(loaded.model, loaded.tokenizer, cases)
            tool_use[check] = round(acc, 4)
        except ValueError as e:  # a model whose tokenizer spells the tools out past its context
            tool_use[check] = f"cannot ask: {e}"
    return {"model": str(model_dir), "suite_accuracy": round(right / total, 4),
            "suite_cases": total, "families": families, "made_up_capitals": round(made_up, 4),
            "tool_use": tool_use,
            "eval_s": round(time.perf_counter() - started, 1), "wrong": wrong_all}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(DEMO_MODEL_DIR))
    parser.add_argument("--cases-per-family", type=int, default=40)
    parser.add_argument("--show-wrong", type=int, default=5, help="wrong answers shown per family")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = measure(args.model, args.cases_per_family)
    result["wrong"] = {f: w[:args.show_wrong] for f, w in result["wrong"].items() if w}
    logger.info("%s", json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
