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
                      model_id: str | None = None, tensor_parallel_size: int = 1) -> ServedModel:
    """Blocking (seconds to minutes): run it in a worker thread. `tensor_parallel_size` > 1
    splits the model over that many processes (`app.serving.tensor_parallel`); a lost rank then
    fails the in-flight requests and stops the server (SIGTERM to this process)."""
    from chip.device import detect_profile
    from framework.engine.async_engine import AsyncEngine
    from framework.engine.llm_engine import LLMEngine
    from model.loader import load_model

    config = engine_config or EngineConfig()
    device = _device(config.device)
    profile = detect_profile(device)  # measured once per machine, then read from the cache
    if tensor_parallel_size > 1:
        from app.serving.tensor_parallel import start_tensor_parallel, stop_this_process

        group = start_tensor_parallel(model_dir, config, tensor_parallel_size, profile,
                                      on_failure=stop_this_process)
        loaded, engine = group.loaded, group.engine
    else:
        loaded = load_model(model_dir, dtype=None if config.dtype == "auto" else config.dtype,
                            device=device)
        spec = config.speculative_config  # a draft model is loaded like the target
        draft = (load_model(spec.model, dtype=None if config.dtype == "auto" else config.dtype,
                            device=device).model if spec is not None and spec.model else None)
        engine = LLMEngine(loaded.model, loaded.tokenizer, config, device_profile=profile,
                           draft_model=draft)
    dtype = next(loaded.model.parameters()).dtype
    # The figures the report card turns each stored answer's timings into MFU / MBU with.
    weight_bytes = sum(p.numel() * p.element_size() for p in loaded.model.parameters())
    settings = {**dataclasses.asdict(config), "device": device,
                "tensor_parallel_size": tensor_parallel_size,
                "dtype": str(dtype).removeprefix("torch."), "device_name": profile.name,
                "num_params": loaded.config.num_params, "weight_bytes": weight_bytes,
                "peak_flops": profile.peak_flops_for(str(dtype).removeprefix("torch.")),
                "memory_bandwidth": profile.memory_bandwidth}
    return ServedModel(id=model_id or model_id_for(model_dir),
                       engine=AsyncEngineClient(AsyncEngine(engine)), tokenizer=loaded.tokenizer,
                       max_model_len=engine.max_model_len, engine_settings=settings,
                       model_dir=str(Path(model_dir).resolve()))


def load_like(model_dir: str | Path, model_id: str, template: ServedModel | None) -> ServedModel:
    """Load another version of a served model with the engine settings `template` runs with
    (a promoted or canary version gets the same KV pool, batch and device as production)."""
    known = template.engine_settings if template is not None else {}
    config = EngineConfig(**{f.name: known[f.name] for f in dataclasses.fields(EngineConfig)
                             if f.name in known})
    if (replicas := known.get("replica_config")) is not None:  # N Ray Serve replicas
        from app.serving.ray_replicas.deploy import ReplicaConfig, deploy_replicated_model

        return deploy_replicated_model(model_dir, config, model_id, ReplicaConfig(**replicas))
    return load_served_model(model_dir, config, model_id, known.get("tensor_parallel_size", 1))


def _device(name: str) -> str:
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
