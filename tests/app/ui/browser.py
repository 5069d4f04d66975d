"""Headless Debian Chromium for the browser tests, and what they measure in it: axe-core's
accessibility violations and every request a page makes.

axe-core is the npm package pinned in tests/app/ui/axe/package.json, installed with `npm ci` the
first time a test asks for it (offline with no cached copy: those tests skip, saying why).
"""
from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
AXE_DIR = Path(__file__).parent / "axe"
AXE_JS = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
BLOCKING_IMPACTS = ("serious", "critical")


def require_chromium() -> None:
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.skip("Debian Chromium is not installed (apt-get install -y chromium; make services)")


def axe_source() -> str:
    """axe.min.js, installed from the pinned package-lock.json when missing; skips when it
    cannot be."""
    if not AXE_JS.exists():
        if shutil.which("npm") is None:
            pytest.skip("npm is not installed: cannot install axe-core for the accessibility checks")
        result = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=AXE_DIR,
                                check=False, capture_output=True, text=True, timeout=300)
        if result.returncode != 0 or not AXE_JS.exists():
            pytest.skip(f"npm ci for axe-core failed (offline?): {result.stderr.strip()[-300:]}")
    return AXE_JS.read_text()


@dataclass(frozen=True, slots=True)
class Violation:
    rule: str
    impact: str
    help: str
    targets: list[str]  # CSS selectors of the offending nodes (first few)

    def __str__(self) -> str:
        return f"{self.impact} {self.rule}: {self.help} at {', '.join(self.targets)}"


def axe_violations(page, source: str) -> list[Violation]:
    """Serious and critical violations axe-core finds in the page once its script run is over
    (during a rerun Streamlit fades the previous run's elements: a transient state, not judged)."""
    page.wait_for_function("() => !document.querySelector('[data-stale=\"true\"]')")
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=source)
    found = page.evaluate("async () => (await axe.run(document)).violations")
    return [Violation(v["id"], v["impact"], v["help"],
                      [json.dumps(n["target"]) for n in v["nodes"][:3]])
            for v in found if v.get("impact") in BLOCKING_IMPACTS]


@dataclass(slots=True)
class RequestLog:
    """Every URL the page asked for (documents, scripts, fonts, images, XHR, websockets)."""
    urls: list[str] = field(default_factory=list)

    def attach(self, page) -> None:
        page.on("request", lambda request: self.urls.append(request.url))
        page.on("websocket", lambda socket: self.urls.append(socket.url))

    def off_machine(self) -> list[str]:
        return sorted({u for u in self.urls
                       if urlparse(u).scheme not in ("data", "blob", "about")
                       and urlparse(u).hostname not in LOCAL_HOSTS})
