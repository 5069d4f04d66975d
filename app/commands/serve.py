"""`flywheel serve`: the OpenAI-compatible HTTP server over one model.

Clients ask for the model by one stable public name (--model-name, default the directory name).
It answers with the model registry's production version: on a new data dir MODEL itself is
registered as `mv-base` at startup, so answers name that version from the first request; a
promotion or rollback hot-swaps it, and the canary answers a share of conversations.

/v1/* needs an API key or a login session unless --no-auth; on a new data dir nobody can sign in
until the first visitor of the UI creates the admin account (or `flywheel create-user`).

Prints the server's base URL on stdout once it accepts connections. SIGTERM or Ctrl-C stops
accepting new connections, lets in-flight requests (streams included) finish, then stops the
engine, drains the history writer and closes the store.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer


def command(
    model: Annotated[Path, typer.Option("--model", help="Hugging Face model directory to serve.")],
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind (0: any free port).")] = 8000,
    api_key: Annotated[Optional[list[str]], typer.Option(
        "--api-key", help="Require this API key on /v1/* (repeatable).")] = None,
    no_auth: Annotated[bool, typer.Option(
        "--no-auth", help="Open /v1/* to anyone who can reach the port (a single-user laptop); "
                          "by default it needs an API key or a signed-in user.")] = False,
    database_url: Annotated[Optional[str], typer.Option(
        help="SQLAlchemy URL of the store (default: SQLite under the data dir).")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(
        help="Data directory (default: $FLYWHEEL_DATA_DIR or ./data).")] = None,
    model_name: Annotated[Optional[str], typer.Option(
        help="Name clients use as `model` (default: the directory name).")] = None,
    max_queue_len: Annotated[int, typer.Option(help="Waiting requests before HTTP 429.")] = 1024,
    max_body_bytes: Annotated[int, typer.Option(
        help="Largest request body in bytes; larger ones get HTTP 413.")] = 8 * 1024 * 1024,
    max_num_seqs: Annotated[int, typer.Option(help="Sequences per engine step.")] = 256,
    num_threads: Annotated[Optional[int], typer.Option(help="CPU threads for the model.")] = None,
    tensor_parallel_size: Annotated[int, typer.Option(
        help="Split the model over this many processes (GPUs; gloo on CPU). Under torchrun, "
             "ranks other than 0 serve their shard and rank 0 serves HTTP.")] = 1,
    canary_fraction: Annotated[Optional[float], typer.Option(
        help="Share of conversations a canary version answers (default: "
             "$FLYWHEEL_CANARY_FRACTION or 0.1).")] = None,
    prefix_cache_isolation: Annotated[str, typer.Option(
        help="none, or user: salt each request's prefix cache by its user so tenants never "
             "share cached KV.")] = "none",
    rate_limit_rpm: Annotated[Optional[int], typer.Option(
        help="Requests per minute per API key before HTTP 429 (default: no limit).")] = None,
    rate_limit_tpm: Annotated[Optional[int], typer.Option(
        help="Prompt + requested completion tokens per minute per API key (default: no limit).")] = None,
    enable_lora: Annotated[bool, typer.Option(
        "--enable-lora", help="Serve LoRA adapters (implied by --lora-modules); load more at "
                              "runtime with POST /v1/load_lora_adapter.")] = False,
    lora_modules: Annotated[Optional[list[str]], typer.Option(
        "--lora-modules", help="An adapter as name=DIR (PEFT layout), served as model=name "
                               "(repeatable).")] = None,
    max_loras: Annotated[int, typer.Option(help="Adapters in one engine step.")] = 4,
    max_lora_rank: Annotated[int, typer.Option(help="Largest adapter rank served.")] = 16,
    speculative_config: Annotated[Optional[str], typer.Option(
        help='Speculative decoding as JSON with vLLM\'s keys, e.g. \'{"method": "ngram", '
             '"num_speculative_tokens": 4, "prompt_lookup_max": 3}\' or \'{"model": DRAFT_DIR, '
             '"num_speculative_tokens": 4}\'.')] = None,
    replicas: Annotated[Optional[int], typer.Option(
        help="Run the engine as a Ray Serve deployment of this many replicas (one process "
             "each; needs the `distributed` extra). Default: one engine in this process.")] = None,
    ray_address: Annotated[Optional[str], typer.Option(
        help="With --replicas: the Ray cluster to join (e.g. auto, HOST:6379); default: a "
             "local Ray instance.")] = None,
    replica_router: Annotated[str, typer.Option(
        help="With --replicas: affinity (a prompt goes to the replica caching its prefix) or "
             "pow2 (Ray's power of two choices).")] = "affinity",
) -> None:
    """Serve MODEL over an OpenAI-compatible HTTP API."""
    from app.api.main import create_app
    from app.core.config import Settings
    from app.serving.loading import load_served_model, model_id_for
    from app.serving.lora_modules import parse_lora_modules, with_lora_modules
    from app.commands.replica_options import replica_options
    from app.serving.registry_watcher import version_to_serve
    from app.core.registry import open_registry
    from shared import EngineConfig

    if tensor_parallel_size < 1:
        raise typer.BadParameter(f"must be >= 1, got {tensor_parallel_size}",
                                 param_hint="--tensor-parallel-size")
    if tensor_parallel_size > 1 and _torchrun_worker():
        from app.serving.tensor_parallel import run_torchrun_worker

        run_torchrun_worker()  # this rank's shard, until rank 0 stops
        return
    if not model.is_dir():
        raise FileNotFoundError(f"model directory not found: {model}")
    if tensor_parallel_size > 1:
        from app.serving.tensor_parallel import check_model_splits

        check_model_splits(model, tensor_parallel_size)  # ValueError (exit 2) before serving
    if not 0 <= port <= 65535:
        raise ValueError(f"--port must be in [0, 65535], got {port}")
    # before anything is opened or registered: a bad combination is a usage error (exit 2)
    replica_config = replica_options(replicas, ray_address, replica_router, tensor_parallel_size)
    settings_kwargs = {"api_keys": list(api_key or []), "require_login": not no_auth,
                       "database_url": database_url,
                       "max_queue_len": max_queue_len, "max_body_bytes": max_body_bytes}
    if data_dir is not None:
        settings_kwargs["data_dir"] = data_dir
    if canary_fraction is not None:
        settings_kwargs["canary_fraction"] = canary_fraction
    settings_kwargs.update(rate_limit_rpm=rate_limit_rpm, rate_limit_tpm=rate_limit_tpm)
    settings_kwargs["prefix_cache_isolation"] = prefix_cache_isolation
    settings = Settings(**settings_kwargs)
    try:
        adapters = parse_lora_modules(lora_modules or [])
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--lora-modules") from e
    engine_config = EngineConfig(max_queue_len=max_queue_len, max_num_seqs=max_num_seqs,
                                 num_threads=num_threads, enable_lora=enable_lora or bool(adapters),
                                 max_loras=max_loras, max_lora_rank=max_lora_rank)
    if speculative_config is not None:
        engine_config.speculative_config = _speculative_config(speculative_config)
    served_id = model_name or model_id_for(model)
    # The public name answers with a registry version from the first request: `mv-base` (this
    # model) in a new data dir, else the production version a flywheel iteration promoted.
    version = version_to_serve(open_registry(settings.data.registry_dir, settings.database_url,
                                             schema=settings.database_schema), model, served_id)
    load_dir, load_id = (version.path, version.id) if version is not None else (model, served_id)

    def load():
        if replica_config is not None:
            from app.serving.ray_replicas.deploy import deploy_replicated_model

            return deploy_replicated_model(load_dir, engine_config, load_id, replica_config)
        return load_served_model(load_dir, engine_config, load_id, tensor_parallel_size)

    app = create_app(settings, public_name=served_id, models=with_lora_modules(
        load_id, load, adapters))
    run_server(app, host, port)
    if replica_config is not None:
        from app.serving.ray_replicas.deploy import disconnect

        disconnect()  # in the main thread, before the interpreter tears Ray's threads down
    if tensor_parallel_size > 1:
        from app.serving.tensor_parallel import group_failure

        if (failure := group_failure()) is not None:  # a lost rank stopped the server
            typer.echo(f"error: {failure}", err=True)
            raise typer.Exit(1)


def _speculative_config(text: str):
    import json

    from shared import SpeculativeConfig

    try:
        return SpeculativeConfig.from_dict(json.loads(text))
    except (json.JSONDecodeError, ValueError, TypeError) as e:
        raise typer.BadParameter(str(e), param_hint="--speculative-config") from e


def _torchrun_worker() -> bool:
    import os

    return "MASTER_ADDR" in os.environ and os.environ.get("RANK", "0") != "0"


def run_server(app, host: str, port: int) -> None:
    """Run uvicorn until SIGTERM/SIGINT; uvicorn's graceful shutdown drains open requests."""
    import uvicorn

    class AnnouncingServer(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            if self.started:
                bound_port = self.servers[0].sockets[0].getsockname()[1] if self.servers else port
                typer.echo(f"http://{host}:{bound_port}")  # the one line of stdout
                sys.stdout.flush()

        def handle_exit(self, sig, frame) -> None:
            super().handle_exit(sig, frame)
            # uvicorn re-raises the signal after its graceful shutdown; once in-flight requests
            # are drained and the store is closed, stopping is a clean exit (status 0).
            self._captured_signals.clear()

    config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                            timeout_graceful_shutdown=None)
    AnnouncingServer(config).run()
