"""`flywheel ui`: run the Streamlit product UI headless, pointed at a Flywheel API."""
from __future__ import annotations

from typing import Annotated

import typer


def command(
    api_url: Annotated[str, typer.Option("--api-url", help="Base URL of the Flywheel API.")] = "http://127.0.0.1:8000",
    port: Annotated[int, typer.Option("--port", help="Port the UI listens on.")] = 8501,
    host: Annotated[str, typer.Option("--host", help="Address the UI binds to.")] = "127.0.0.1",
    require_login: Annotated[bool, typer.Option(
        "--require-login", help="Chat only after signing in, even when the API is open.")] = False,
    answer_links: Annotated[bool, typer.Option(
        "--answer-links", help="Make web addresses in model answers clickable links (off: every "
                               "address anyone typed or a model wrote shows as plain text).")] = False,
) -> None:
    """Run the chat, review console, models page and report card (Streamlit)."""
    import os
    import sys
    from pathlib import Path

    if not api_url.startswith(("http://", "https://")):
        raise ValueError(f"--api-url must start with http:// or https://, got {api_url!r}")
    if not 0 < port < 65536:
        raise ValueError(f"--port must be between 1 and 65535, got {port}")
    entrypoint = Path(__file__).resolve().parents[1] / "ui" / "main.py"
    repo_root = str(entrypoint.parents[2])
    env = {**os.environ, "FLYWHEEL_API_URL": api_url.rstrip("/"), "FLYWHEEL_UI_REQUIRE_LOGIN": str(int(require_login)),
           "FLYWHEEL_UI_ANSWER_LINKS": str(int(answer_links)),
           "PYTHONPATH": os.pathsep.join(p for p in (repo_root, os.environ.get("PYTHONPATH")) if p)}
    args = [sys.executable, "-m", "streamlit", "run", str(entrypoint), "--server.headless", "true",
            "--server.port", str(port), "--server.address", host, "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none", "--client.toolbarMode", "minimal"]
    args += ["--server.scriptHealthCheckEnabled", "true"]  # the warm-up run below uses it
    sys.stdout.flush()
    _warm_up_in_background(f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}")
    # Replace this process with Streamlit, so a signal sent to `flywheel ui` reaches the server itself
    # (a child would outlive a terminated parent).
    os.execve(sys.executable, args, env)


def _warm_up_in_background(ui_url: str) -> None:
    """Run the UI script once when Streamlit is up (app.ui.warmup), from a grandchild process:
    the child exits at once and is reaped here, so nothing is left for Streamlit to reap."""
    import os

    if (child := os.fork()) != 0:
        os.waitpid(child, 0)
        return
    if os.fork() != 0:
        os._exit(0)
    try:
        from app.ui.warmup import warm_up

        warm_up(ui_url)
    finally:
        os._exit(0)
