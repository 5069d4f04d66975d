"""Keyboard shortcuts in a real browser: headless Chromium on the Annotate page (served by
Streamlit, signed in as an annotator) against the real API. 4 rates, 1 labels, Enter submits,
S skips; what reached the server is read back through the API. axe-core finds no serious or
critical violation on the page."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.app.ui.browser import axe_source, axe_violations
from tests.app.ui.live_servers import REPO_ROOT, _stop, _wait_until, free_port

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
APP = Path(__file__).resolve().parent / "annotate_app.py"
SCHEMA = {"name": "keys", "min_submitted": 1, "guidelines": "Press keys.",
          "questions": [{"name": "quality", "kind": "rating", "scale": 5},
                        {"name": "topic", "kind": "label", "options": ["math", "story"]}]}


@pytest.fixture(scope="module")
def page_url(server):
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.skip("Debian Chromium is not installed (apt-get install -y chromium)")
    server["boss"].post("/v1/annotation/datasets", json=SCHEMA).raise_for_status()
    server["boss"].post("/v1/annotation/datasets/keys/records",
                        json={"from_chats": {"kind": "messages"}}).raise_for_status()
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "ANNOTATE_API_URL": server.url,
           "ANNOTATE_TOKEN": server.tokens["ann2"], "ANNOTATE_ROLE": "annotator", "ANNOTATE_USERNAME": "ann2"}
    args = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    process = subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until(lambda: httpx.get(f"{url}/_stcore/health").status_code == 200, 60, "streamlit", process)
        yield url
    finally:
        _stop(process)


def _wait_for_keys(page, question_suffix: str | None, not_record: str | None = None) -> None:
    """Until the page's key map targets `question_suffix`'s widget (None: only Enter and S), of
    another record than `not_record`."""
    if question_suffix is None:
        page.wait_for_function("() => (window.__flywheelShortcuts || []).length === 2")
    else:
        page.wait_for_function("([suffix, old]) => (window.__flywheelShortcuts || []).some((s) => "
                               "s.selector.includes(suffix + ' ') && !(old && s.selector.includes(old)))",
                               arg=[question_suffix, not_record])


def test_number_keys_enter_and_s(server, page_url):
    from playwright.sync_api import sync_playwright

    first_id = server["ann2"].get("/v1/annotation/datasets/keys/next").json()["record"]["id"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(30_000)
        page.goto(page_url)
        page.get_by_text("Keys:").wait_for()
        page.get_by_text("What is 2 plus 3?").wait_for()
        page.get_by_role("radio", name="math").wait_for(state="attached")  # the widgets are drawn
        violations = axe_violations(page, axe_source())
        assert not violations, "; ".join(map(str, violations))
        page.get_by_text("Press keys.").click()  # focus on the page, not in a text box
        # each rerun installs the keys of what is on screen: press only once they are in place
        _wait_for_keys(page, "_quality")
        page.keyboard.press("4")
        page.get_by_role("radio", name="4").and_(page.locator(":checked")).wait_for(state="attached")
        _wait_for_keys(page, "_topic")  # the keys moved on to the next question
        page.keyboard.press("1")
        page.get_by_role("radio", name="math").and_(page.locator(":checked")).wait_for(state="attached")
        _wait_for_keys(page, None)
        page.keyboard.press("Enter")
        page.get_by_text("Submitted.").wait_for()
        _wait_for_keys(page, "_quality", not_record=first_id)  # the next record is on screen
        page.keyboard.press("s")
        page.get_by_text("Skipped.").wait_for()
        browser.close()
    rows = server["ann2"].get("/v1/annotation/datasets/keys/progress").json()["annotators"]
    mine = next(a for a in rows if a["annotator"] == "ann2")
    assert (mine["submitted"], mine["discarded"]) == (1, 1)
    exported = server["ann2"].get("/v1/annotation/datasets/keys/export.jsonl").text.splitlines()
    assert '"quality.responses": [4]' in exported[0] and '"topic.responses": ["math"]' in exported[0]
