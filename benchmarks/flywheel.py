"""Proof of the flywheel: iterations fed with user corrections teach held-out skills, one after
another, without forgetting the earlier ones or the original domain.

End to end: `flywheel serve` and `flywheel worker` run as subprocesses on a fresh data dir (started
once). For each iteration k, simulated users ask skill k's train phrasings through the OpenAI
client and post thumbs-down + corrections (thumbs-up on right answers, and on right answers of
the original domain) to `POST /v1/feedback`; an admin triggers `POST /v1/flywheel/iterate`; the
worker runs dataset -> fine-tune -> evaluate -> gate -> canary -> promote (the snapshot holds all
feedback so far, so earlier skills' corrections are replayed); the server hot-swaps; accuracy on
held-out phrasings of every skill so far and on the original domain is measured through the
server. `--iterations 1` (the default) teaches the made-up capitals; `--iterations N` (2-4)
teaches the skills of `app.demo.skills` in order: facts, a format rule, a refusal style, an
operation.

    .venv/bin/python benchmarks/flywheel.py [--iterations 4] [--out result.json] [--data-dir DIR]
"""
from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from app.demo.corpus import eval_prompts
from app.demo.feedback_sim import ask, is_right, leave_feedback_http, skill_questions
from app.demo.feedback_sim import thumbs_up_questions
from app.demo.processes import platform_env, start_serve, start_worker, stop, wait_for
from app.demo.recipe import DEMO_MODEL_DIR
from app.demo.skills import Skill, capitals_skill, demo_skills
from app.flywheel.eval_suite import REGRESSION_FAMILIES
from app.flywheel.runs import UNFINISHED, RunStatus

MODEL_NAME = "flywheel-demo"
ORIGINAL_DOMAIN = "original_domain"
MIN_KEPT_FRACTION = 0.9  # an earlier skill keeps at least this share of its accuracy
MAX_ORIGINAL_DROP_POINTS = 2.0
logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Measurement:
    accuracy: dict[str, float]  # skill name (held-out phrasings) or ORIGINAL_DOMAIN -> accuracy
    model_versions: list[str]  # the versions that answered


@dataclass(slots=True)
class IterationResult:
    iteration: int
    skill: str
    kind: str
    corrections: int  # thumbs-down + correction posted
    thumbs_up: int
    run_id: str
    status: str  # the run's RunStatus
    reasons: list[str]  # the gate's, from the run record
    new_version: str | None
    skill_before: float  # the new skill's held-out accuracy before the iteration
    after: Measurement
    feedback_s: float  # asking + posting feedback through the API
    pipeline_s: float  # POST /v1/flywheel/iterate until the server answers with the new version
    worker_wall_s: float | None  # the run's own wall time, as the worker recorded it
    hot_swap_s: float | None
    wall_s: float  # the whole iteration: feedback, pipeline, hot swap and measurements


@dataclass(slots=True)
class BenchResult:
    start: Measurement  # before the first iteration
    iterations: list[IterationResult] = field(default_factory=list)
    held_out_cases: dict[str, int] = field(default_factory=dict)
    total_wall_s: float = 0.0

    def retention(self) -> dict[str, float]:
        """Per skill: the lowest accuracy after any later iteration, as a fraction of its accuracy
        right after the iteration that taught it (skills that were not learned are left out)."""
        kept = {}
        for k, taught in enumerate(self.iterations):
            learned = taught.after.accuracy[taught.skill]
            later = [it.after.accuracy[taught.skill] for it in self.iterations[k + 1:]]
            if learned > 0 and later:
                kept[taught.skill] = round(min(later) / learned, 3)
        return kept

    def original_drop_points(self) -> float:
        return 100 * (self.start.accuracy[ORIGINAL_DOMAIN]
                      - self.iterations[-1].after.accuracy[ORIGINAL_DOMAIN])


def original_cases(cases_per_family: int) -> list[tuple[str, str]]:
    return [case for i, family in enumerate(REGRESSION_FAMILIES)
            for case in eval_prompts(family, cases_per_family, seed=1900 + i)]


def served_accuracy(client, cases: list[tuple[str, str]],
                    concurrency: int = 8) -> tuple[float, set]:
    """Fraction of (question, expected) answered right through the server, and the model versions
    that answered."""
    with ThreadPoolExecutor(concurrency) as pool:
        replies = list(pool.map(lambda case: ask(client, MODEL_NAME, case[0]), cases))
    right = sum(is_right(expected, answer) for (_, expected), (answer, _) in zip(cases, replies))
    return right / len(cases), {str(extra.get("model_version")) for _, extra in replies}


def measure(client, suites: dict[str, list[tuple[str, str]]]) -> Measurement:
    accuracy, versions = {}, set()
    for name, cases in suites.items():
        accuracy[name], answered_by = served_accuracy(client, cases)
        versions |= answered_by
    return Measurement(accuracy, sorted(versions))


def held_out(skill: Skill) -> list[tuple[str, str]]:
    return [(c.question, c.expected) for c in skill.held_out]


def _serves_only(http, version_id: str) -> bool:
    card = http.get(f"/v1/models/{MODEL_NAME}")
    body = card.json() if card.is_success else {}
    return body.get("version") == version_id and body.get("canary") is None


def run_iteration(http, run_timeout_s: float) -> tuple[dict, float | None]:
    """POST /v1/flywheel/iterate, wait for the run and, if promoted, for the hot swap."""
    queued = http.post("/v1/flywheel/iterate")
    queued.raise_for_status()
    run_id = queued.json()["id"]

    def finished_run():
        runs = http.get("/v1/flywheel/runs").json()["data"]
        run = next((r for r in runs if r["id"] == run_id), None)
        return run if run and run["status"] not in UNFINISHED else None

    run = wait_for(finished_run, run_timeout_s, f"iteration {run_id}", interval_s=1)
    if run["status"] != RunStatus.PROMOTED:
        return run, None
    swapped = time.perf_counter()
    # Ask the server what it routes to, not one reply: while the watcher has yet to see the
    # promotion, a conversation that hashes into the canary share already gets the new version.
    new_version = run["steps"]["register"]["version_id"]
    wait_for(lambda: _serves_only(http, new_version), 60, f"the server to serve {new_version}",
             interval_s=0.2)
    return run, round(time.perf_counter() - swapped, 2)


def teach(k: int, skill: Skill, client, http, suites: dict, skill_before: float,
          run_timeout_s: float) -> IterationResult:
    """Iteration k: feedback on `skill` through the API, one flywheel run, measure `suites`."""
    started = time.perf_counter()
    liked = thumbs_up_questions(eval_prompts("arithmetic", 10, seed=4242 + k))
    feedback = leave_feedback_http(client, http, MODEL_NAME, skill_questions(skill) + liked)
    feedback_s = time.perf_counter() - started
    run_started = time.perf_counter()
    run, swap_s = run_iteration(http, run_timeout_s)
    pipeline_s = time.perf_counter() - run_started
    after = measure(client, suites)
    return IterationResult(
        iteration=k, skill=skill.name, kind=str(skill.kind), corrections=feedback.corrections,
        thumbs_up=feedback.thumbs_up, run_id=run["id"], status=run["status"],
        reasons=list((run["steps"].get("canary", {}).get("gate") or {}).get("reasons", [])),
        new_version=run["steps"].get("register", {}).get("version_id"),
        skill_before=skill_before, after=after, feedback_s=round(feedback_s, 1),
        pipeline_s=round(pipeline_s, 1), worker_wall_s=run.get("wall_s"), hot_swap_s=swap_s,
        wall_s=round(time.perf_counter() - started, 1))


def run_flywheel(data_dir: Path, skills: list[Skill], base_model: str = str(DEMO_MODEL_DIR),
                 cases_per_family: int = 40, run_timeout_s: float = 900,
                 progress=None) -> BenchResult:
    """Teach `skills` one iteration each through one server and one worker (see the module doc).
    `cases_per_family`: original-domain cases per family measured through the server.
    `progress(IterationResult)` is called after each iteration."""
    import httpx
    from openai import OpenAI

    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    env = platform_env(data_dir, base_model, OMP_NUM_THREADS="2")
    started = time.perf_counter()
    server, url = start_serve(env, base_model, data_dir / "serve.log")
    worker = start_worker(env, data_dir / "worker.log")
    try:
        client = OpenAI(base_url=f"{url}/v1", api_key="sk-local", max_retries=0, timeout=120)
        http = httpx.Client(base_url=url, timeout=60)
        suites = {ORIGINAL_DOMAIN: original_cases(cases_per_family)}
        result = BenchResult(start=measure(client, suites))
        for k, skill in enumerate(skills, start=1):
            suites[skill.name] = held_out(skill)
            result.held_out_cases[skill.name] = len(suites[skill.name])
            before = measure(client, {skill.name: suites[skill.name]}).accuracy[skill.name]
            result.iterations.append(teach(k, skill, client, http, dict(suites), before,
                                           run_timeout_s))
            if progress is not None:
                progress(result.iterations[-1])
    finally:
        stop(worker)
        stop(server)
    result.total_wall_s = round(time.perf_counter() - started, 1)
    return result


def run_proof(data_dir: Path, base_model: str = str(DEMO_MODEL_DIR),
              cases_per_family: int = 40) -> BenchResult:
    """The one-iteration proof: the made-up capitals."""
    return run_flywheel(data_dir, [capitals_skill()], base_model, cases_per_family)


def skills_for(iterations: int) -> list[Skill]:
    if iterations == 1:
        return [capitals_skill()]
    skills = list(demo_skills())
    if not 1 <= iterations <= len(skills):
        raise ValueError(f"--iterations must be between 1 and {len(skills)}, got {iterations}")
    return skills[:iterations]


def report_table(result: BenchResult):
    """One row per iteration: status, wall times, and the accuracy of every skill so far."""
    from rich.table import Table

    names = [ORIGINAL_DOMAIN] + [it.skill for it in result.iterations]
    table = Table(title="flywheel iterations (held-out accuracy measured through the server)")
    for column in ("#", "skill", "status", "pipeline s", "iteration s", "before", *names):
        table.add_column(column, overflow="fold")
    table.add_row("0", "(start)", "", "", "", "",
                  f"{100 * result.start.accuracy[ORIGINAL_DOMAIN]:.1f}",
                  *[""] * len(result.iterations))
    for it in result.iterations:
        cells = [f"{100 * it.after.accuracy[n]:.1f}" if n in it.after.accuracy else ""
                 for n in names]
        table.add_row(str(it.iteration), it.skill, it.status, f"{it.pipeline_s:.0f}",
                      f"{it.wall_s:.0f}", f"{100 * it.skill_before:.1f}", *cells)
    return table


def summary(result: BenchResult) -> dict:
    retention = result.retention()
    return {"total_wall_s": result.total_wall_s,
            "max_pipeline_s": max(it.pipeline_s for it in result.iterations),
            "retention": retention,
            "earlier_skills_kept": all(r >= MIN_KEPT_FRACTION for r in retention.values()),
            "original_drop_points": round(result.original_drop_points(), 2),
            "original_domain_kept": result.original_drop_points() <= MAX_ORIGINAL_DROP_POINTS,
            "all_promoted": all(it.status == RunStatus.PROMOTED for it in result.iterations)}


def main() -> None:
    from rich.console import Console

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1,
                        help="1: the made-up capitals; 2-4: facts, format, refusal, operation")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--base-model", default=str(DEMO_MODEL_DIR))
    parser.add_argument("--cases-per-family", type=int, default=40,
                        help="original-domain cases per family measured through the server")
    parser.add_argument("--out", type=Path, default=None, help="write the result as JSON here")
    args = parser.parse_args()
    try:
        skills = skills_for(args.iterations)
    except ValueError as e:
        parser.error(str(e))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    console = Console(width=max(Console().width, 150))

    def progress(it: IterationResult) -> None:
        accuracy = ", ".join(f"{k} {100 * v:.1f}%" for k, v in it.after.accuracy.items())
        console.log(f"iteration {it.iteration}/{len(skills)} ({it.skill}): {it.status} in "
                    f"{it.pipeline_s:.0f} s; {accuracy}")
        for reason in it.reasons:
            console.log(f"  gate: {reason}")

    with tempfile.TemporaryDirectory() as tmp:
        with console.status(f"teaching {len(skills)} skill(s) through serve + worker"):
            result = run_flywheel(args.data_dir or Path(tmp), skills, args.base_model,
                                  args.cases_per_family, progress=progress)
    console.print(report_table(result))
    out = {"summary": summary(result), **asdict(result)}
    console.print_json(json.dumps(out["summary"]))
    if args.out:
        args.out.write_text(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
