"""Proof of the flywheel: one iteration fed with user corrections teaches a held-out skill.

The demo model never saw the made-up-capitals family. Simulated users ask it with three phrasings
per country and correct its (wrong) answers; one iteration (dataset -> fine-tune -> evaluate ->
gate -> canary -> promote) runs; we measure accuracy on three *other* phrasings before and after,
the original-domain regression suite, and the iteration's wall time.

    .venv/bin/python benchmarks/flywheel.py [--data-dir DIR] [--cases-per-family 40]
"""
from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

from app.demo.corpus import eval_prompts
from app.demo.feedback_sim import leave_feedback
from app.demo.recipe import DEMO_MODEL_DIR
from app.flywheel import steps
from app.flywheel.settings import FlywheelSettings
from app.store.session import open_store


def run_proof(data_dir: Path, base_model: str = str(DEMO_MODEL_DIR), cases_per_family: int = 40,
              recipe: dict | None = None) -> dict:
    settings = FlywheelSettings(data_dir=data_dir, base_model_dir=base_model,
                                eval_cases_per_family=cases_per_family, recipe=recipe or {})
    store = open_store(settings.database_url)
    started = time.perf_counter()
    feedback = leave_feedback(store, base_model, steps.BASE_VERSION_ID,
                              thumbs_up_questions=eval_prompts("arithmetic", 10, seed=4242))
    store.close()
    feedback_s = time.perf_counter() - started
    started = time.perf_counter()
    payload = steps.iterate(settings)
    iteration_s = time.perf_counter() - started
    before, after = payload["baseline_metrics"], payload.get("metrics") or {}
    return {
        "corrections": feedback["corrections"], "thumbs_up": feedback["thumbs_up"],
        "held_out_skill_before": before["tasks"]["made_up_capitals"],
        "held_out_skill_after": after.get("tasks", {}).get("made_up_capitals"),
        "original_domain_before": before["regression"]["original_domain"],
        "original_domain_after": after.get("regression", {}).get("original_domain"),
        "held_out_loss_before": before["held_out_loss"],
        "held_out_loss_after": after.get("held_out_loss"),
        "status": payload["status"], "gate": payload.get("gate"),
        "train": payload.get("candidate", {}).get("train"),
        "iteration_wall_s": round(iteration_s, 1), "feedback_sim_s": round(feedback_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--base-model", default=str(DEMO_MODEL_DIR))
    parser.add_argument("--cases-per-family", type=int, default=40)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        result = run_proof(args.data_dir or Path(tmp), args.base_model, args.cases_per_family)
    print(json.dumps(result, indent=2))  # noqa: T201 - a benchmark's report is its output


if __name__ == "__main__":
    main()
