"""Fine-tune a candidate from a dataset snapshot, and evaluate a model directory on the suite.

The recipe (settings.recipe) lists stages (sft, dpo, kto) run in order on the base model; SFT
mixes in replay conversations from the eval suite's domain so the candidate keeps what it knew.
"""
from __future__ import annotations

import logging
from pathlib import Path

from app.flywheel.settings import FlywheelSettings

logger = logging.getLogger(__name__)


def _train_config(recipe: dict, objective: str):
    from framework.train import TrainConfig

    return TrainConfig.from_dict({**recipe, "objective": objective, "progress": True})


def train_candidate(settings: FlywheelSettings, base_dir: str, snapshot_id: str,
                    out_dir: Path) -> dict:
    """Train on the snapshot from `base_dir`, write the model to `out_dir`; returns a summary."""
    import json

    from app.flywheel.dataset import load_snapshot_records, split_records, to_examples
    from app.flywheel.encode import sft_example
    from app.flywheel.eval_suite import load_suite
    from app.store.session import open_store
    from framework.train import train
    from model.checkpoint_writer import save_checkpoint
    from model.loader import load_model

    recipe = settings.recipe
    store = open_store(settings.database_url)
    try:
        records = load_snapshot_records(store, snapshot_id)
    finally:
        store.close()
    train_records, _ = split_records(records, recipe.get("eval_percent", 0))
    loaded = load_model(base_dir, dtype="float32")
    model, tokenizer = loaded.model, loaded.tokenizer
    summary: dict = {"base": str(base_dir), "snapshot_id": snapshot_id, "stages": {}}
    for stage in recipe["stages"]:
        examples = to_examples(tokenizer, train_records, stage) * recipe.get("feedback_repeat", 1)
        if stage == "sft" and recipe.get("replay_conversations"):
            suite = load_suite(settings.eval_suite, 1, recipe["replay_conversations"])
            examples += [sft_example(tokenizer, conv) for conv in suite.replay]
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
    save_checkpoint(model, loaded.config, out_dir, tokenizer_dir=base_dir, dtype="float32",
                    extra_files={"train_summary.json": json.dumps(summary, indent=2)})
    return summary


def evaluate_model_dir(settings: FlywheelSettings, model_dir: str) -> dict:
    """`model.evaluation.evaluate` of one model directory on the configured suite."""
    from app.flywheel.encode import sft_example
    from app.flywheel.eval_suite import load_suite
    from model.evaluation import evaluate
    from model.loader import load_model

    suite = load_suite(settings.eval_suite, settings.eval_cases_per_family, 0)
    loaded = load_model(model_dir, dtype="float32")
    held_out = [sft_example(loaded.tokenizer, conv) for conv in suite.held_out]
    return evaluate(loaded.model, loaded.tokenizer, held_out, suite.tasks, suite.regression)
