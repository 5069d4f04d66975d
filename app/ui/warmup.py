"""Run the UI script once as soon as Streamlit is up, so the first person to open the page does
not wait for it.

The first run in a new Streamlit process imports the pages' modules and Streamlit's element code:
measured 8 s of a 9.7 s first page on the loaded 2-core box, against 1.5-2 s for every later
visitor. Streamlit's script health check (`/_stcore/script-health-check`, enabled by `flywheel
ui`) runs the script in a session of its own without a browser; it only reads from the API.
"""
from __future__ import annotations

import time

import httpx


def warm_up(ui_url: str, timeout_s: float = 120.0) -> bool:
    """Wait for Streamlit at `ui_url`, then run its script once; True when that run succeeded."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{ui_url}/_stcore/health", timeout=2).status_code == 200:
                check = httpx.get(f"{ui_url}/_stcore/script-health-check", timeout=timeout_s)
                return check.status_code == 200
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False
