"""Load a model directory into a ready `ServedModel`: weights and tokenizer (model/), an LLMEngine
driven by an AsyncEngine (framework/), and the settings stored with every answer."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from app.serving.engine_client import AsyncEngineClient
from app.serving.model_host import ServedModel
from shared import EngineConfig


def model_id_for(model_dir: str | Path) -> str:
    """The served name of a model directory: its directory name (e.g. "stories260K-hf")."""
    return Path(model_dir).resolve().name


def load_served_model(model_dir: str | Path, engine_config: EngineConfig | None = None,
                      model_id: str | None = None) -> ServedModel:
    """Blocking (seconds to minutes): run it in a worker thread."""
    from framework.engine.async_engine import AsyncEngine
    from framework.engine.llm_engine import LLMEngine
    from model.loader import load_model

    config = engine_config or EngineConfig()
    device = _device(config.device)
    loaded = load_model(model_dir, dtype=None if config.dtype == "auto" else config.dtype,
                        device=device)
    engine = LLMEngine(loaded.model, loaded.tokenizer, config)
    settings = {**dataclasses.asdict(config), "device": device,
                "dtype": str(next(loaded.model.parameters()).dtype).removeprefix("torch.")}
    return ServedModel(id=model_id or model_id_for(model_dir),
                       engine=AsyncEngineClient(AsyncEngine(engine)), tokenizer=loaded.tokenizer,
                       max_model_len=engine.max_model_len, engine_settings=settings)


def _device(name: str) -> str:
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
