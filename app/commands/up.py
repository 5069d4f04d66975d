"""`flywheel up`: the whole platform on its embedded default — API + engine, UI and worker.

Each part runs as its own `flywheel` subprocess (the same commands a user can run one by one);
this command only starts them in order, prints their URLs, and stops them all on Ctrl-C/SIGTERM.
Sign-in is required unless --no-auth: on a new data dir the first person to open the UI creates
the admin account (no password is ever printed; FLYWHEEL_ADMIN_PASSWORD presets one).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

DEMO_MODEL_DIR = Path(__file__).resolve().parents[1] / "demo" / "model"
DEMO_MODEL_NAME = "flywheel-demo"


def command(
    model: Annotated[Optional[Path], typer.Option(
        help="Hugging Face model directory (default: the bundled demo model).")] = None,
    host: Annotated[str, typer.Option(help="Interface for the API and the UI.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="API port.")] = 8000,
    ui_port: Annotated[int, typer.Option(help="UI port.")] = 8501,
    data_dir: Annotated[Path, typer.Option(help="Data directory (store, broker, registry).")] = Path("data"),
    worker: Annotated[bool, typer.Option(help="Also start a flywheel worker.")] = True,
    ui: Annotated[bool, typer.Option(help="Also start the UI.")] = True,
    no_auth: Annotated[bool, typer.Option(
        "--no-auth", help="No sign-in: anyone who reaches the ports chats as the local admin "
                          "(a single-user laptop).")] = False,
    replicas: Annotated[Optional[int], typer.Option(
        help="Serve the engine as a Ray Serve deployment of this many replicas (the "
             "`distributed` extra).")] = None,
    ray_address: Annotated[Optional[str], typer.Option(
        help="With --replicas: the Ray cluster to join (default: a local Ray instance).")] = None,
    tensor_parallel_size: Annotated[int, typer.Option(
        help="Split the model over this many processes (GPUs; gloo on CPU), as `flywheel "
             "serve --tensor-parallel-size`.")] = 1,
) -> int:
    """Start API, UI and worker; print their URLs; stop all of them on Ctrl-C."""
    from app.commands.bootstrap import ensure_admin, needs_admin

    model_dir = model or DEMO_MODEL_DIR
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"no model at {model_dir} (config.json missing); pass --model DIR"
                                + (" or run `flywheel train-demo`" if model is None else ""))
    serve_scaling = _scaling_args(model_dir, replicas, ray_address, tensor_parallel_size)
    # The worker fine-tunes the model being served, and all parts share one data directory.
    env = {**os.environ, "FLYWHEEL_DATA_DIR": str(data_dir.resolve()),
           "FLYWHEEL_BASE_MODEL": str(model_dir.resolve())}
    if password := os.environ.get("FLYWHEEL_ADMIN_PASSWORD"):  # unattended installs; never echoed
        ensure_admin(password, data_dir=data_dir)
    children: list[subprocess.Popen] = []
    try:
        serve = ["serve", "--model", str(model_dir), "--host", host, "--port", str(port)]
        if model is None:  # the bundled model's directory is just "model"; give it a real name
            serve += ["--model-name", DEMO_MODEL_NAME]
        if no_auth:
            serve.append("--no-auth")
        serve += serve_scaling
        api = _start(serve, env, children)
        api_url = _read_url(api, "API")
        typer.echo(f"API   {api_url}/v1  (OpenAI-compatible; metrics at {api_url}/metrics)")
        if ui:
            _start(["ui", "--api-url", api_url, "--host", host, "--port", str(ui_port)], env, children)
            typer.echo(f"UI    http://{host}:{ui_port}")
        if worker:
            _start(["worker"], env, children)
            typer.echo("Worker started (flywheel jobs; embedded SQLite broker)")
        if no_auth:
            typer.echo("No sign-in (--no-auth): anyone who reaches these ports is the local admin")
        elif needs_admin(data_dir=data_dir):
            typer.echo(f"Open http://{host}:{ui_port} to create the admin account" if ui else
                       "No account yet: flywheel create-user NAME --role admin")
        sys.stdout.flush()
        return _wait(children)
    finally:
        _stop(children)


def _scaling_args(model_dir: Path, replicas: int | None, ray_address: str | None,
                  tensor_parallel_size: int) -> list[str]:
    """`serve`'s --replicas / --ray-address / --tensor-parallel-size. `serve` checks them (exit 2
    naming the flag); checked here too so that a bad value stops `up` before anything starts."""
    from app.commands.replica_options import replica_options

    if tensor_parallel_size < 1:
        raise typer.BadParameter(f"must be >= 1, got {tensor_parallel_size}",
                                 param_hint="--tensor-parallel-size")
    replica_options(replicas, ray_address, "affinity", tensor_parallel_size)
    if tensor_parallel_size > 1:
        from app.serving.tensor_parallel import check_model_splits

        check_model_splits(model_dir, tensor_parallel_size)  # ValueError: exit 2
    args = ["--replicas", str(replicas)] if replicas is not None else []
    args += ["--ray-address", ray_address] if ray_address is not None else []
    return args + (["--tensor-parallel-size", str(tensor_parallel_size)]
                   if tensor_parallel_size != 1 else [])


def _start(args: list[str], env: dict, children: list[subprocess.Popen]) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-m", "app.cli", *args], env=env,
                             stdout=subprocess.PIPE if args[0] == "serve" else subprocess.DEVNULL,
                             text=True)
    children.append(child)
    return child


def _read_url(api: subprocess.Popen, name: str) -> str:
    line = api.stdout.readline().strip()  # `flywheel serve` prints its URL once it accepts requests
    if not line.startswith("http"):
        raise RuntimeError(f"{name} did not start (exit code {api.poll()}); see the log above")
    return line


def _wait(children: list[subprocess.Popen]) -> int:
    stop = {"requested": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(requested=True))
    try:
        while not stop["requested"]:
            for child in children:
                if child.poll() is not None:
                    typer.echo(f"a component exited with code {child.returncode}; stopping", err=True)
                    return child.returncode or 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    return 0


def _stop(children: list[subprocess.Popen]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)  # serve drains in-flight requests on SIGTERM
    for child in children:
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
