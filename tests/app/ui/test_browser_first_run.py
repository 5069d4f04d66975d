"""A new user's path in headless Chromium, on one new install (`flywheel serve` wanting a sign-in,
no account yet) and one `flywheel ui`: the first visitor creates the admin account; answers stream
in and grow, once; the chosen thumb shows; untrusted text (addresses, bidi overrides) stays text;
axe-core finds no serious or critical violation on any page; and no request leaves the machine.
"""
from __future__ import annotations

from urllib.parse import urlparse

import httpx
import pytest

from app.ui.warmup import warm_up
from tests.app.ui.browser import (CHROMIUM, CHROMIUM_ARGS, RequestLog, axe_source, axe_violations,
                                  require_chromium)
from tests.app.ui.live_servers import TINY_MODEL, live_api, live_ui
from tests.utils.registry import data_registry

pytestmark = pytest.mark.browser

ADMIN_PASSWORD = "first-admin-pw-1"
PHISH = "Open http://phish.example/login or www.phish.example now, or mail evil@phish.example"
ICON_NAMES = ("keyboard_arrow", "smart_toy", "thumb_up", "thumb_down", "rate_review", "account_tree",
              "expand_more")
# Every 50 ms while it streams: how many answers are on screen and how long the last one is.
WATCH_ANSWERS = """() => { window.__answers = [];
  const sample = () => { const all = document.querySelectorAll('[aria-label="Chat message from assistant"]');
    window.__answers.push([all.length, all.length ? all[all.length - 1].innerText.length : 0]); };
  window.__watch = setInterval(sample, 50); }"""


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    require_chromium()
    from playwright.sync_api import sync_playwright

    axe = axe_source()
    with live_api(tmp_path_factory.mktemp("first-run"), first_run=True) as api, \
            live_ui(api.url) as ui_url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(30_000)
        requests = RequestLog()
        requests.attach(page)
        page.goto(ui_url)
        yield api, page, axe, requests
        browser.close()


def _open(page, title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()
    page.get_by_role("heading", name=title if title != "Review" else "Review console").first.wait_for()
    page.wait_for_timeout(1500)  # the page's own calls finish and it settles


def _assert_accessible(page, axe: str, where: str) -> None:
    violations = axe_violations(page, axe)
    assert not violations, f"{where}: " + "; ".join(map(str, violations))


def test_the_first_visitor_creates_the_admin_account(platform):
    api, page, axe, _ = platform
    assert httpx.get(f"{api.url}/v1/models").status_code == 401  # the API wants a sign-in too
    page.get_by_role("button", name="Create admin account").wait_for()
    assert page.get_by_test_id("stSidebarNav").count() == 0  # nothing but this form
    _assert_accessible(page, axe, "create-admin form")
    page.get_by_label("Password (8 characters or more)").fill(ADMIN_PASSWORD)
    page.get_by_label("Repeat the password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Create admin account").click()
    page.get_by_text("Signed in as admin (admin).").wait_for()
    assert httpx.get(f"{api.url}/v1/auth/status").json()["needs_admin"] is False
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Review").wait_for()  # every page now
    _assert_accessible(page, axe, "account page")


def test_the_answer_streams_in_growing_once_and_the_chosen_thumb_shows(platform):
    _, page, axe, _ = platform
    _open(page, "Chat")
    page.evaluate(WATCH_ANSWERS)
    page.get_by_test_id("stChatInputTextArea").fill("Once upon a time")
    page.keyboard.press("Enter")
    page.get_by_role("button", name="Regenerate").wait_for()
    page.wait_for_timeout(1000)
    samples = page.evaluate("() => { clearInterval(window.__watch); return window.__answers; }")
    assert max(count for count, _ in samples) == 1, samples  # never two copies while it redraws
    lengths = [length for count, length in samples if count == 1]
    growing = sorted(set(lengths))
    assert len(growing) >= 3 and lengths[-1] == growing[-1], lengths  # seen part-way, then whole

    accessible = page.locator("body").aria_snapshot()  # what a screen reader is given
    assert not [name for name in ICON_NAMES if name in accessible], accessible

    down = page.get_by_role("radio", name="Thumbs down")
    down.click()
    page.get_by_role("radio", name="Thumbs down", checked=True).wait_for()
    up = page.get_by_role("radio", name="Thumbs up")
    background = "e => getComputedStyle(e).backgroundColor"
    assert down.evaluate(background) != up.evaluate(background)  # a visible difference, not only ARIA
    assert up.get_attribute("aria-checked") == "false"
    _assert_accessible(page, axe, "chat page")


def test_untrusted_text_is_shown_as_text_on_every_page(platform):
    api, page, axe, _ = platform
    token = httpx.post(f"{api.url}/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
                       ).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    model = httpx.get(f"{api.url}/v1/models", headers=headers).json()["data"][0]["id"]
    chat = httpx.post(f"{api.url}/v1/chat/completions", headers=headers, timeout=60, json={
        "model": model, "max_tokens": 8, "messages": [{"role": "user", "content": PHISH}]}).json()
    feedback = {"message_id": chat["message_id"], "thumbs": "down", "comment": PHISH,
                "correction": "See www.phish.example/fix"}
    httpx.post(f"{api.url}/v1/feedback", headers=headers, json=feedback).raise_for_status()
    registry = data_registry(api.data_dir.resolve())
    base = registry.find("mv-base") or registry.register("base", str(TINY_MODEL), status="production")
    registry.register("evil\u202e", str(TINY_MODEL), parent_id=base.id)  # an unclosed RTL override

    _open(page, "Review")
    page.get_by_text("See www").first.wait_for()
    _assert_no_links_out(page)
    _assert_accessible(page, axe, "review console")
    _open(page, "Chat")
    page.get_by_role("button", name=PHISH[:9]).first.click()  # the conversation, from the sidebar
    page.get_by_text("Open http").first.wait_for()
    _assert_no_links_out(page)
    _open(page, "Models")
    page.get_by_test_id("stGraphVizChart").first.wait_for()
    assert "[U+202E]" in page.get_by_test_id("stGraphVizChart").first.inner_text()
    _assert_accessible(page, axe, "models page")
    _open(page, "Report card")
    _assert_accessible(page, axe, "report card")
    _open(page, "Annotate")
    _assert_accessible(page, axe, "annotation console")


def test_flywheel_ui_runs_the_script_once_before_the_first_visitor(platform):
    _, page, _, _ = platform
    ui = urlparse(page.url)
    assert warm_up(f"{ui.scheme}://{ui.netloc}", timeout_s=60)  # what `flywheel ui` does at start


def test_no_request_left_the_machine(platform):
    _, _, _, requests = platform
    assert requests.urls and not requests.off_machine()


def _assert_no_links_out(page) -> None:
    hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
    assert not [h for h in hrefs if "phish" in h or not h.startswith("http://127.0.0.1")], hrefs
