"""How long a person waits: the platform ready to answer, and the UI's first paint.

    python benchmarks/startup.py [--rounds 1]      # about 90 s a round on 2 cores

Each round, on a fresh data dir and then again on the same one (migrations already applied):
  - serve: `flywheel serve` on the bundled demo model, from launch to the URL line (accepting
    connections) and to `/health` 200 (model loaded: ready to answer);
  - ui: `flywheel ui` from launch to `/_stcore/health` 200, then headless Chromium from
    navigation to first contentful paint and to the page's heading drawn by the script, for the
    first visitor (arriving while `flywheel ui` still warms the script up) and a later one.
Then where the serve time goes, each part in a fresh interpreter: importing the server, migrating
a new SQLite store, loading the model. Medians are printed; numbers move with other load on the
machine, so compare parts within one run.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx

CHROMIUM = "/usr/bin/chromium"  # Debian's (apt-get install chromium), as the browser tests use
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--no-first-run"]

DEMO_MODEL = REPO / "app" / "demo" / "model"
FLYWHEEL = [sys.executable, "-m", "app.cli"]
PARTS = {
    "import the server": "import app.commands.serve, app.api.main, app.serving.loading",
    "migrate a new store": ("import sys, app.store.session as s; "
                            "s.open_store(f'sqlite:///{sys.argv[1]}/flywheel.db').close()"),
    "load the model": ("import sys; from pathlib import Path; from shared import EngineConfig; "
                       "from app.serving.loading import load_served_model; "
                       f"load_served_model(Path('{DEMO_MODEL}'), EngineConfig(), 'demo')"),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(url: str, process: subprocess.Popen, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[3]} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise TimeoutError(f"{url} not ready after {timeout_s}s")


def time_serve(data_dir: Path) -> tuple[float, float, subprocess.Popen, str]:
    """(s to the URL line, s to /health 200), the running server and its URL."""
    start = time.monotonic()
    process = subprocess.Popen([*FLYWHEEL, "serve", "--model", str(DEMO_MODEL), "--port", "0",
                                "--data-dir", str(data_dir), "--no-auth",
                                "--model-name", "flywheel-demo"],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True)
    url = process.stdout.readline().strip()
    accepting = time.monotonic() - start
    _wait(f"{url}/health", process)
    return accepting, time.monotonic() - start, process, url


def time_ui(api_url: str, browser) -> tuple[float, list[tuple[float, float]]]:
    """(s to Streamlit's health, [(ms to first contentful paint, ms to the page's heading)] for
    the first visitor, right after the health check answers, and for a later one)."""
    port = free_port()
    start = time.monotonic()
    process = subprocess.Popen([*FLYWHEEL, "ui", "--api-url", api_url, "--port", str(port)],
                               cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(f"http://127.0.0.1:{port}/_stcore/health", process)
        serving = time.monotonic() - start
        visits = []
        for _ in ("first", "later"):
            page = browser.new_page()
            navigation = time.monotonic()
            page.goto(f"http://127.0.0.1:{port}")
            page.get_by_role("heading", level=1).first.wait_for(timeout=60_000)
            heading_ms = (time.monotonic() - navigation) * 1000
            visits.append((page.evaluate(
                "() => performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1"),
                heading_ms))
            page.close()
        return serving, visits
    finally:
        process.terminate()
        process.wait(timeout=30)


def record_ui(rows: dict[str, list[float]], serving: float,
              visits: list[tuple[float, float]]) -> None:
    rows.setdefault("ui: server up (s)", []).append(serving)
    for visitor, (paint_ms, heading_ms) in zip(("first", "later"), visits):
        rows.setdefault(f"ui, {visitor} visitor: first contentful paint (ms)", []).append(paint_ms)
        rows.setdefault(f"ui, {visitor} visitor: page heading drawn (ms)", []).append(heading_ms)


def time_part(code: str, data_dir: Path) -> float:
    start = time.monotonic()
    subprocess.run([sys.executable, "-c", code, str(data_dir)], cwd=REPO, check=True,
                   env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True)
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    rows: dict[str, list[float]] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=CHROMIUM_ARGS)
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory() as data_dir:
                for start in ("new data dir", "existing data dir"):
                    accepting, ready, server, url = time_serve(Path(data_dir))
                    try:
                        row = f"serve, {start}: "
                        rows.setdefault(row + "accepting connections (s)", []).append(accepting)
                        rows.setdefault(row + "ready, model loaded (s)", []).append(ready)
                        if start == "existing data dir":
                            record_ui(rows, *time_ui(url, browser))
                    finally:
                        server.terminate()
                        server.wait(timeout=60)
            for name, code in PARTS.items():
                with tempfile.TemporaryDirectory() as scratch:
                    rows.setdefault(f"part: {name} (s)", []).append(time_part(code, Path(scratch)))
        browser.close()
    width = max(map(len, rows))
    print(f"{'measure':<{width}}  median   (all rounds)")
    for name, values in rows.items():
        each = ", ".join(f"{v:.2f}" for v in values)
        print(f"{name:<{width}}  {statistics.median(values):7.2f}  ({each})")


if __name__ == "__main__":
    main()
