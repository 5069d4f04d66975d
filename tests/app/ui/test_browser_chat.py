"""The chat in headless Chromium against the live API: an answer's fenced code renders as a code
block (its HTML as text, its link as text), and Stop cuts a streaming answer short: the server
keeps the text so far as an aborted answer, which the page marks as stopped, after a reload too.
"""
from __future__ import annotations

import httpx
import pytest

from app.ui.chat_render import STOPPED_NOTE
from tests.app.ui.browser import CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.app.ui.live_servers import PASSWORD, live_ui

pytestmark = pytest.mark.browser

CODE = "print('<b>not bold</b>')"
ANSWER = f"Run this:\n```python\n{CODE}\n```\nDocs at http://evil.example/x."
LONG_ANSWER_TOKENS = 400  # the tiny model's context holds this much after a short prompt


@pytest.fixture(scope="module")
def chat_page(api):
    """Chromium on `flywheel ui`, signed in as alice on the chat page."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with live_ui(api.url) as ui_url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(30_000)
        page.goto(ui_url)
        _sign_in(page)
        yield page
        browser.close()


def _sign_in(page) -> None:
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Chat").click()
    page.get_by_role("heading", name="Chat").first.wait_for()


def _settle(page) -> None:
    """Until the page's script run is over (Streamlit marks the previous run's elements stale)."""
    page.wait_for_timeout(300)
    page.wait_for_function("() => !document.querySelector('[data-stale=\"true\"]')")


def _alice(api) -> dict:
    return {"Authorization": f"Bearer {api.token_for('alice')}"}


def test_an_answers_code_block_renders_as_code(api, chat_page):
    page = chat_page
    history = [{"role": "user", "content": "Show me code"}, {"role": "assistant", "content": ANSWER},
               {"role": "user", "content": "Thanks"}]
    reply = httpx.post(f"{api.url}/v1/chat/completions", headers=_alice(api), timeout=60,
                       json={"model": api.model, "messages": history, "max_tokens": 4}).json()
    httpx.patch(f"{api.url}/v1/conversations/{reply['conversation_id']}", headers=_alice(api),
                json={"title": "Code sample"}).raise_for_status()
    page.reload()  # the sidebar list is read when the page runs
    _sign_in(page)
    page.get_by_role("button", name="Code sample").click()
    answer = page.get_by_label("Chat message from assistant").first
    code = answer.get_by_test_id("stCode")
    code.wait_for()
    assert code.inner_text().strip() == CODE  # the HTML in the code is text
    assert answer.locator("pre code").count() == 1 and answer.locator("b").count() == 0
    assert answer.locator("a").count() == 0  # the address after the code is text too
    assert "http://evil.example/x" in answer.inner_text().replace("\u2060", "")


def test_stop_keeps_the_partial_answer_marked_stopped_after_a_reload(api, chat_page):
    page = chat_page
    page.get_by_text("Sampling").click()
    max_tokens = page.get_by_label("Max tokens")
    max_tokens.fill(str(LONG_ANSWER_TOKENS))
    max_tokens.press("Enter")
    _settle(page)  # one click at a time: a click during a run interrupts it
    page.get_by_role("button", name="New conversation").click()
    page.get_by_role("button", name="Delete this conversation").wait_for(state="hidden")
    _settle(page)
    page.get_by_test_id("stChatInputTextArea").fill("Once upon a time there was a dragon")
    page.keyboard.press("Enter")
    stop = page.get_by_role("button", name="Stop generating")
    stop.wait_for()
    page.wait_for_function("""() => { const all = document.querySelectorAll('[aria-label="Chat message from assistant"]');
        return all.length && all[all.length - 1].innerText.length > 20; }""", polling=20)
    stop.click()
    page.get_by_text(STOPPED_NOTE).wait_for()

    newest = httpx.get(f"{api.url}/v1/conversations", headers=_alice(api)).json()["data"][0]
    stored = httpx.get(f"{api.url}/v1/conversations/{newest['id']}", headers=_alice(api)).json()["messages"]
    answer = stored[-1]
    assert answer["role"] == "assistant" and answer["finish_reason"] == "abort"
    assert answer["content"] and answer["completion_tokens"] < LONG_ANSWER_TOKENS
    page.reload()  # a new session: sign in and open the conversation from the list
    _sign_in(page)
    page.get_by_role("button", name=newest["title"]).first.click()
    page.get_by_text(STOPPED_NOTE).wait_for()
    shown = " ".join(page.get_by_label("Chat message from assistant").last.inner_text().split())
    assert " ".join(answer["content"].split())[:30] in shown
