"""Proof of the flywheel: one iteration fed with user corrections teaches a held-out skill.

The demo model never saw the made-up-capitals family. End to end (the default): `flywheel serve`
and `flywheel worker` run as subprocesses on a fresh data dir; simulated users ask through the
OpenAI client, leave thumbs-down + corrections (and thumbs-up on right original-domain answers)
via `POST /v1/feedback`; an admin triggers `POST /v1/flywheel/iterate`; the worker runs dataset ->
fine-tune -> evaluate -> gate -> canary -> promote; the server hot-swaps to the new version, and
accuracy on *other* phrasings of the skill and on the original domain is measured through the
server before and after. `--in-process` skips server and broker (quick path).

    .venv/bin/python benchmarks/flywheel.py [--in-process] [--data-dir DIR] [--cases-per-family 40]
"""
from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from app.demo.corpus import eval_prompts
from app.demo.feedback_sim import ask, leave_feedback, leave_feedback_http
from app.demo.recipe import DEMO_MODEL_DIR
from app.flywheel.pipeline import iterate
from app.flywheel.runs import UNFINISHED, RunStatus
from app.flywheel.eval_suite import REGRESSION_FAMILIES, made_up_capital_cases
from app.flywheel.settings import FlywheelSettings
from app.demo.processes import platform_env, start_serve, start_worker, stop, wait_for
from model.registry import BASE_VERSION_ID

MODEL_NAME = "flywheel-demo"
logger = logging.getLogger(__name__)


def thumbs_up_questions() -> list[tuple[str, str]]:
    return eval_prompts("arithmetic", 10, seed=4242)


def run_proof_in_process(data_dir: Path, base_model: str = str(DEMO_MODEL_DIR),
                         cases_per_family: int = 40, recipe: dict | None = None) -> dict:
    """Feedback written straight into the store and `pipeline.iterate` in this process."""
    from app.store.session import open_store

    settings = FlywheelSettings(data_dir=data_dir, base_model_dir=base_model,
                                eval_cases_per_family=cases_per_family, recipe=recipe or {})
    store = open_store(settings.database_url)
    started = time.perf_counter()
    feedback = leave_feedback(store, base_model, BASE_VERSION_ID,
                              thumbs_up_questions=thumbs_up_questions())
    store.close()
    feedback_s = time.perf_counter() - started
    started = time.perf_counter()
    payload = iterate(settings).to_dict()
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


def served_accuracy(client, cases: list[tuple[str, str]], concurrency: int = 8) -> tuple[float, set]:
    """Fraction of (question, expected) answered right through the server, and the model versions
    that answered."""
    with ThreadPoolExecutor(concurrency) as pool:
        replies = list(pool.map(lambda case: ask(client, MODEL_NAME, case[0]), cases))
    right = sum(expected.lower() in answer.lower() for (_, expected), (answer, _) in zip(cases, replies))
    return right / len(cases), {extra.get("model_version") for _, extra in replies}


def measure(client, original_cases: list[tuple[str, str]]) -> dict:
    skill_cases = [(c.messages[0]["content"], c.expected) for c in made_up_capital_cases()]
    skill, skill_versions = served_accuracy(client, skill_cases)
    original, original_versions = served_accuracy(client, original_cases)
    return {"held_out_skill": skill, "original_domain": original, "held_out_cases": len(skill_cases),
            "original_cases": len(original_cases),
            "model_versions": sorted(map(str, skill_versions | original_versions))}


def _serves_only(http, version_id: str) -> bool:
    card = http.get(f"/v1/models/{MODEL_NAME}")
    return card.is_success and card.json()["version"] == version_id and card.json()["canary"] is None


def run_proof(data_dir: Path, base_model: str = str(DEMO_MODEL_DIR), cases_per_family: int = 40,
              iteration_timeout_s: float = 600) -> dict:
    """The end-to-end proof through `flywheel serve` + `flywheel worker` (see the module doc).
    `cases_per_family`: original-domain cases per family measured through the server (the
    worker's own gate uses the flywheel settings' suite)."""
    import httpx
    from openai import OpenAI

    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    env = platform_env(data_dir, base_model, OMP_NUM_THREADS="2")
    original_cases = [case for i, family in enumerate(REGRESSION_FAMILIES)
                      for case in eval_prompts(family, cases_per_family, seed=1900 + i)]
    server, url = start_serve(env, base_model, data_dir / "serve.log")
    worker = start_worker(env, data_dir / "worker.log")
    try:
        client = OpenAI(base_url=f"{url}/v1", api_key="sk-local", max_retries=0, timeout=120)
        http = httpx.Client(base_url=url, timeout=60)
        before = measure(client, original_cases)
        started = time.perf_counter()
        feedback = leave_feedback_http(client, http, MODEL_NAME,
                                       thumbs_up_questions=thumbs_up_questions())
        feedback_s = time.perf_counter() - started
        started = time.perf_counter()
        queued = http.post("/v1/flywheel/iterate")
        queued.raise_for_status()
        run_id = queued.json()["id"]

        def finished_run():
            runs = http.get("/v1/flywheel/runs").json()["data"]
            run = next((r for r in runs if r["id"] == run_id), None)
            return run if run and run["status"] not in UNFINISHED else None

        run = wait_for(finished_run, iteration_timeout_s, f"iteration {run_id}", interval_s=1)
        iteration_s = time.perf_counter() - started
        new_version = run["steps"].get("register", {}).get("version_id")
        swap_s = None
        if run["status"] == RunStatus.PROMOTED:
            swapped = time.perf_counter()
            # Ask the server what it routes to, not one reply: while the watcher has yet to see
            # the promotion, a conversation that hashes into the canary share already gets the
            # new version but the rest still get the old production version.
            wait_for(lambda: _serves_only(http, new_version), 60,
                     f"the server to serve {new_version}", interval_s=0.2)
            swap_s = round(time.perf_counter() - swapped, 2)
        after = measure(client, original_cases)
    finally:
        stop(worker)
        stop(server)
    return {
        "corrections": feedback["corrections"], "thumbs_up": feedback["thumbs_up"],
        "held_out_skill_before": before["held_out_skill"], "held_out_skill_after": after["held_out_skill"],
        "original_domain_before": before["original_domain"],
        "original_domain_after": after["original_domain"],
        "held_out_cases": before["held_out_cases"], "original_cases": before["original_cases"],
        "versions_before": before["model_versions"], "versions_after": after["model_versions"],
        "new_version": new_version, "status": run["status"], "gate": run["steps"].get("canary", {}).get("gate"),
        "worker_gate_metrics": run["steps"].get("evaluate"),
        "iteration_wall_s": round(iteration_s, 1), "iteration_wall_s_worker": run.get("wall_s"),
        "hot_swap_s": swap_s, "feedback_via_api_s": round(feedback_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--base-model", default=str(DEMO_MODEL_DIR))
    parser.add_argument("--cases-per-family", type=int, default=None,
                        help="original-domain cases per family (default 40)")
    parser.add_argument("--in-process", action="store_true",
                        help="no server/worker: feedback into the store, iteration in this process")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or Path(tmp)
        if args.in_process:
            result = run_proof_in_process(data_dir, args.base_model, args.cases_per_family or 40)
        else:
            result = run_proof(data_dir, args.base_model, args.cases_per_family or 40)
    print(json.dumps(result, indent=2, default=str))  # noqa: T201 - a benchmark's report is its output


if __name__ == "__main__":
    main()
