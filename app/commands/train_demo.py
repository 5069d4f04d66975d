"""`flywheel train-demo`: train the bundled demo model from its self-generated corpus."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def command(
    out: Annotated[Optional[Path], typer.Option(help="Output model directory "
                                                "(default: the bundled app/demo/model).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for corpus, tokenizer, init and batch order.")] = 1234,
    conversations: Annotated[int, typer.Option(min=100, help="Corpus size.")] = 24000,
    epochs: Annotated[int, typer.Option(min=1, help="Epochs (used when --max-steps is 0).")] = 1,
    max_steps: Annotated[int, typer.Option(min=0, help="Optimizer steps of 32 chats "
                                           "(0: run --epochs instead).")] = 750,
) -> None:
    """Train the demo model (a few minutes on a laptop CPU) and write a Hugging Face directory."""
    import json
    import logging

    from app.demo.recipe import DEMO_MODEL_DIR, DemoRecipe, build_demo_model

    logging.getLogger("app.demo").setLevel(logging.INFO)
    recipe = DemoRecipe(seed=seed, num_conversations=conversations)
    recipe.train.num_epochs = epochs
    recipe.train.max_steps = max_steps or None
    recipe.train.seed = seed
    summary = build_demo_model(recipe, out or DEMO_MODEL_DIR)
    typer.echo(json.dumps({"out": str(out or DEMO_MODEL_DIR), **summary}))
