"""Fine-tune a candidate from a dataset snapshot's train side, and measure it for the gate.

The recipe (settings.recipe) lists stages (sft, dpo, kto) run in order on the base model; SFT
mixes in replay — the answers users liked, and the demo corpus when the base is the demo model —
so the candidate keeps what it knew.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from app.flywheel.encode import PromptStyle
from app.flywheel.gate import GateConfig, GateReport
from app.flywheel.grouping import SnapshotSplit
from app.flywheel.scoring import EvalItem
from app.flywheel.settings import FlywheelSettings

logger = logging.getLogger(__name__)
DEFAULT_EVAL_FRACTION = 0.25  # share of prompts (whole groups) held out to measure the skill


def _train_config(recipe: dict, objective: str):
    from framework.train import DistContext, TrainConfig

    # Under torchrun (app.flywheel.ddp_finetune) each of N ranks takes 1/N of the recipe's
    # micro-batch, so the global batch, and the trained weights, are the single-process ones.
    world = DistContext.from_process_group().world_size
    micro = int(recipe.get("micro_batch_size", 8)) // world
    return TrainConfig.from_dict({**recipe, "objective": objective, "progress": True,
                                  **({"micro_batch_size": micro} if world > 1 else {})})


def is_demo_base(settings: FlywheelSettings) -> bool:
    """Is the lineage rooted in the bundled demo model (whose own corpus and suite then apply)?"""
    from app.demo.recipe import DEMO_MODEL_DIR

    return Path(settings.base_model_dir).resolve() == DEMO_MODEL_DIR.resolve()


def eval_fraction(settings: FlywheelSettings) -> float:
    return float(settings.recipe.get("eval_fraction", DEFAULT_EVAL_FRACTION))


def snapshot_split(settings: FlywheelSettings, snapshot_id: str,
                   base_snapshot_id: str | None = None) -> tuple[dict, SnapshotSplit]:
    """(all records, their train/eval split) of a stored snapshot; the split is salted by the
    snapshot id, which is stable for its content. `base_snapshot_id`: the snapshot the base
    version was trained on (what it taught is held out apart from what is new)."""
    from app.flywheel.dataset import load_snapshot_records, split_for_iteration
    from app.store.session import open_store

    store = open_store(settings.database_url)
    try:
        records = load_snapshot_records(store, snapshot_id)
        base_records = load_snapshot_records(store, base_snapshot_id) if base_snapshot_id else None
    finally:
        store.close()
    return records, split_for_iteration(records, snapshot_id, eval_fraction(settings),
                                        base_records)


def _new_and_rehearsed(split: SnapshotSplit) -> tuple[dict[str, list[dict]], dict[str, list[dict]]]:
    """The train side as (what is new since the base, what already taught the base). The base has
    learned the second, so it is rehearsed fewer times (`rehearsal_repeat`): training time grows
    with what is new, not with everything ever taught."""
    from app.flywheel.grouping import prompt_id

    def taught(record: dict) -> bool:
        return prompt_id(record) in split.taught_before

    return ({k: [r for r in v if not taught(r)] for k, v in split.train.items()},
            {k: [r for r in v if taught(r)] for k, v in split.train.items()})


def train_candidate(settings: FlywheelSettings, base_dir: str, snapshot_id: str,
                    out_dir: Path, base_snapshot_id: str | None = None) -> dict:
    """Train on the snapshot's train side from `base_dir`, write the model to `out_dir`; returns
    a summary. SFT replays the answers users liked (and the demo corpus on the demo model)."""
    import json

    from app.flywheel.dataset import replay_records, to_examples
    from app.flywheel.encode import sft_example
    from framework.train import train
    from model.checkpoint_writer import save_checkpoint
    from model.loader import load_model

    recipe = settings.recipe
    records, split = snapshot_split(settings, snapshot_id, base_snapshot_id)
    loaded = load_model(base_dir, dtype="float32")
    model, tokenizer = loaded.model, loaded.tokenizer
    summary: dict = {"base": str(base_dir), "snapshot_id": snapshot_id, "stages": {},
                     "split": {"groups": split.num_groups, "eval_groups": split.num_eval_groups,
                               "train": {k: len(v) for k, v in split.train.items()},
                               "eval": {k: len(v) for k, v in split.eval.items()}}}
    new, rehearsed = _new_and_rehearsed(split)
    for stage in recipe["stages"]:
        examples = (to_examples(tokenizer, new, stage) * recipe.get("feedback_repeat", 1)
                    + to_examples(tokenizer, rehearsed, stage)
                    * recipe.get("rehearsal_repeat", recipe.get("feedback_repeat", 1)))
        if stage == "sft" and examples:
            examples += to_examples(tokenizer, {"sft": replay_records(split.train)}, "sft")
            if recipe.get("replay_conversations") and is_demo_base(settings):
                from app.demo.corpus import generate_corpus

                examples += [sft_example(tokenizer, conv)
                             for conv in generate_corpus(recipe["replay_conversations"], seed=555)]
        if not examples:
            summary["stages"][stage] = {"skipped": "no examples"}
            continue
        result = train(model, examples, _train_config(recipe, stage))
        summary["stages"][stage] = {"examples": len(examples), "steps": result.num_steps,
                                    "first_loss": result.step_losses[0],
                                    "last_loss": result.step_losses[-1],
                                    "seconds": round(result.seconds, 1),
                                    "tokens_per_s": round(result.tokens_per_s)}
        logger.info("stage %s: %s", stage, summary["stages"][stage])
    model.eval()
    from framework.train import DistContext

    if DistContext.from_process_group().is_main:  # data parallel: every rank holds the same model
        save_checkpoint(model, loaded.config, out_dir, tokenizer_dir=base_dir, dtype="float32",
                        extra_files={"train_summary.json": json.dumps(summary, indent=2)})
    return summary


def regression_suites(settings: FlywheelSettings, base_dir: str) -> dict[str, list[EvalItem]]:
    """The operator's registered eval sets, plus the demo domain when the base is the demo model.
    On a model without a chat template, a one-message case is asked as a plain completion."""
    from app.flywheel.eval_sets import registered_eval_cases
    from app.flywheel.eval_suite import demo_suite
    from app.store.session import open_store
    from model.tokenizer import Tokenizer

    store = open_store(settings.database_url)
    try:
        cases = registered_eval_cases(store)
    finally:
        store.close()
    cases = {f"eval set {name}": suite for name, suite in cases.items()}  # never shadows a built-in
    if is_demo_base(settings):
        cases = {**demo_suite(settings.eval_cases_per_family, 0).regression, **cases}
    plain = Tokenizer.from_dir(base_dir).chat_template is None

    def item(case) -> EvalItem:
        style = PromptStyle.COMPLETION if plain and len(case.messages) == 1 else PromptStyle.CHAT
        return EvalItem(case.messages, case.expected, style)

    return {name: [item(c) for c in suite] for name, suite in cases.items()}


def suites_fingerprint(suites: dict[str, list[EvalItem]], lm_eval_tasks=()) -> str:
    """A short content hash of the regression suites: a gate report measured against other suites
    (an eval set or lm-eval task registered or changed since) is not reused."""
    from app.flywheel.lm_eval_tasks import fingerprint

    canonical = json.dumps({name: [[item.prompt, item.reference, item.style.value] for item in suite]
                            for name, suite in sorted(suites.items())}, sort_keys=True)
    if lm_eval_tasks:  # without any, the key is what it was before lm-eval tasks existed
        canonical += fingerprint(list(lm_eval_tasks))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def evaluate_candidate_dir(settings: FlywheelSettings, base_dir: str, candidate_dir: str,
                           snapshot_id: str, base_snapshot_id: str | None = None,
                           suites: dict[str, list[EvalItem]] | None = None,
                           lm_eval_tasks=None) -> GateReport:
    """The gate's measurements and decision for one candidate (`app.flywheel.gate`); the
    lm-eval tasks default to those registered under the data directory."""
    from app.flywheel.candidate_eval import evaluate_candidate
    from app.flywheel.lm_eval_tasks import registered_tasks

    _, split = snapshot_split(settings, snapshot_id, base_snapshot_id)
    config = GateConfig(max_regression_points=settings.max_regression_points,
                        max_loss_rise_nats=settings.max_loss_rise_nats)
    if suites is None:
        suites = regression_suites(settings, base_dir)
    if lm_eval_tasks is None:
        lm_eval_tasks = registered_tasks(settings.data)
    return evaluate_candidate(base_dir, candidate_dir, split, suites, config, lm_eval_tasks)
