"""End to end in a real browser: `flywheel ui` in headless Chromium against the live API.

Sign in, ask, see the streamed answer, regenerate, thumbs-down with a correction, find the item in
the review queue, label it, export a snapshot. Screenshots of every page go to
artifacts/screenshots/ for a human to look at.
"""
import shutil
from pathlib import Path

import httpx
import pytest

from tests.utils.registry import data_registry
from tests.app.ui.live_servers import PASSWORD, REPO_ROOT, TINY_MODEL, live_ui

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = REPO_ROOT / "artifacts" / "screenshots"
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def browser_page(api):
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.skip("Debian Chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with live_ui(api.url) as ui_url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(ui_url)
        yield page
        browser.close()


def _shot(page, name: str) -> None:
    page.wait_for_timeout(500)  # let the last rerun paint
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def _open(page, title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()
    page.get_by_role("heading", name=title if title != "Review" else "Review console").first.wait_for()


def test_sign_in_chat_feedback_review_and_export(api, browser_page):
    page = browser_page
    page.get_by_role("button", name="Sign in").wait_for()  # keys required: the sign-in page only
    _shot(page, "01-signed-out")
    page.get_by_label("Username").fill("boss")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Signed in as boss (admin).").wait_for()
    _shot(page, "02-account")

    _open(page, "Chat")
    page.get_by_test_id("stChatInputTextArea").fill("Once upon a time")
    page.keyboard.press("Enter")
    assistant = page.get_by_label("Chat message from assistant")
    page.get_by_role("button", name="Regenerate").wait_for()
    headers = {"Authorization": f"Bearer {api.admin_key}"}
    boss = {"Authorization": f"Bearer {api.token_for('boss')}"}
    conversation = httpx.get(f"{api.url}/v1/conversations", headers=boss).json()["data"][0]  # newest
    stored = httpx.get(f"{api.url}/v1/conversations/{conversation['id']}", headers=boss).json()["messages"]
    shown = " ".join(assistant.first.inner_text().split())
    assert " ".join(stored[1]["content"].split())[:40] in shown  # the streamed answer is the stored one
    _shot(page, "03-chat-answer")

    page.get_by_role("button", name="Regenerate").click()
    page.get_by_text("version 2 of 2").wait_for()
    _shot(page, "04-chat-regenerated")

    page.get_by_role("radio", name="Thumbs down").click()
    page.get_by_text("feedback saved", exact=True).wait_for()
    page.get_by_text("Tell us more / write the better answer").click()
    correction = page.get_by_label("Write the better answer")
    correction.fill("Once upon a time, a bear found honey.")
    correction.blur()  # a text area commits its value on blur
    page.get_by_role("button", name="Send feedback").click()
    correction.wait_for(state="hidden")  # sent: the panel closes
    assert page.get_by_text("feedback saved", exact=True).count() == 1
    stored = httpx.get(f"{api.url}/v1/conversations/{conversation['id']}", headers=boss).json()["messages"]
    records = [(f["thumbs"], f["correction"]) for m in stored for f in m["feedback"]]
    assert records == [("down", "Once upon a time, a bear found honey.")]  # one judgement, one record
    _shot(page, "05-chat-feedback")

    _open(page, "Review")
    page.get_by_text("Once upon a time, a bear found honey.").first.wait_for()
    _shot(page, "06-review-queue")
    page.get_by_text("Compare sibling answers").first.click()  # a toggle: siblings load on demand
    page.get_by_role("button", name="Prefer this").nth(1).wait_for()  # both answers, side by side
    _shot(page, "06b-review-siblings")
    page.get_by_role("button", name="Accept").first.click()
    page.get_by_text("Labelled accept.").wait_for()
    page.get_by_role("button", name="Export a new snapshot").click()
    page.get_by_text("Snapshot v").first.wait_for()
    _shot(page, "07-review-exported")
    snapshot = httpx.get(f"{api.url}/v1/datasets/snapshots", headers=headers).json()["data"][0]  # newest
    sft = httpx.get(f"{api.url}/v1/datasets/snapshots/{snapshot['id']}/sft.jsonl", headers=headers).text
    assert "a bear found honey" in sft

    registry = data_registry(api.data_dir.resolve())  # what the flywheel would register
    base = registry.find("mv-0001") or registry.register("base", str(TINY_MODEL), status="production")
    registry.register("ft-browser", str(TINY_MODEL), parent_id=base.id, dataset_snapshot_id=snapshot["id"])
    _open(page, "Models")
    page.get_by_test_id("stGraphVizChart").first.wait_for()
    _shot(page, "08-models")
    _open(page, "Report card")
    page.get_by_test_id("stVegaLiteChart").first.wait_for()
    _shot(page, "09-report")
