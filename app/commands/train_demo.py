"""`flywheel train-demo`: train the bundled demo model from its self-generated corpus."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def command(
    out: Annotated[Optional[Path], typer.Option(help="Output model directory "
                                                "(default: the bundled app/demo/model).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for corpus, tokenizer, init and batch order.")] = 1234,
    conversations: Annotated[Optional[int], typer.Option(
        min=100, help="Corpus size (default: the recipe's).")] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Epochs (used when --max-steps is 0).")] = 1,
    max_steps: Annotated[Optional[int], typer.Option(
        min=0, help="Optimizer steps of 32 chats (default: the recipe's; 0: run --epochs "
        "instead).")] = None,
    curriculum_steps: Annotated[Optional[int], typer.Option(
        min=0, help="Steps of the second stage, which over-samples sums and copying "
        "(default: the recipe's; 0: no second stage).")] = None,
) -> None:
    """Train the demo model (about 20 minutes on 2 CPU cores) and write a Hugging Face
    directory. The defaults reproduce the bundled model: same seed and threads, same weights."""
    import json
    import logging

    from app.demo.recipe import DEMO_MODEL_DIR, DemoRecipe, build_demo_model

    logging.getLogger("app.demo").setLevel(logging.INFO)
    recipe = DemoRecipe(seed=seed)
    if conversations is not None:
        recipe.num_conversations = conversations
    recipe.train.num_epochs = epochs
    if max_steps is not None:
        recipe.train.max_steps = max_steps or None
    recipe.train.seed = seed
    if curriculum_steps == 0:
        recipe.curriculum = None
    elif curriculum_steps is not None:
        recipe.curriculum.train.max_steps = curriculum_steps
    summary = build_demo_model(recipe, out or DEMO_MODEL_DIR)
    typer.echo(json.dumps({"out": str(out or DEMO_MODEL_DIR), **summary}))
