"""`flywheel import-llama2c`: convert a legacy llama2.c checkpoint into a Hugging Face directory."""
from __future__ import annotations

import logging
from typing import Annotated

import typer

logger = logging.getLogger(__name__)


def command(
    model_bin: Annotated[str, typer.Argument(help="llama2.c checkpoint (legacy .bin export).")],
    tokenizer_model: Annotated[str, typer.Argument(help="Its sentencepiece tokenizer.model.")],
    out_dir: Annotated[str, typer.Argument(help="New (or empty) output directory.")],
) -> None:
    """Convert a legacy llama2.c checkpoint into a Hugging Face model directory.

    Writes config.json, generation_config.json, model.safetensors and tokenizer files, which
    `flywheel generate --model OUT_DIR` (and transformers) load.
    """
    from model.llama2c import import_llama2c

    path = import_llama2c(model_bin, tokenizer_model, out_dir)
    logger.info("wrote %s", path)
