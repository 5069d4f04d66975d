"""Keyboard shortcuts of the annotation page: number keys answer the current rating or label
question, Enter submits, S skips.

Streamlit widgets carry their key as a CSS class (`st-key-<key>`), so a shortcut is a key and the
element to click. The map is computed here from the questions and what is already answered (the
"current" question is the first unanswered rating or label, so 4, 1, Enter rates, labels and
submits), and a small script in the page clicks the element. Keys typed into a text box are left
alone. The map and script are pure; `install` puts them on the page.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

SUBMIT_KEY, SKIP_KEY = "ann_submit", "ann_skip"  # the buttons' widget keys
MAX_NUMBER_KEYS = 10  # 1..9 and 0 for the tenth option


@dataclass(frozen=True, slots=True)
class Shortcut:
    key: str  # KeyboardEvent.key
    selector: str  # the element clicked
    index: int  # which match of the selector (0: the first)
    action: str  # shown in the help line


def widget_key(record_id: str, question: str) -> str:
    """The Streamlit key of a question's widget for one record (fresh state for every record)."""
    return f"ann_{record_id}_{question}"


def current_question(questions: list[dict], answered: dict[str, Any]) -> dict | None:
    """The first rating or label question without an answer: number keys answer it."""
    return next((q for q in questions if q["kind"] in ("rating", "label")
                 and answered.get(q["name"]) is None), None)


def shortcut_map(questions: list[dict], answered: dict[str, Any], record_id: str) -> list[Shortcut]:
    shortcuts = [Shortcut("Enter", f".st-key-{SUBMIT_KEY} button", 0, "submit"),
                 Shortcut("s", f".st-key-{SKIP_KEY} button", 0, "skip")]
    question = current_question(questions, answered)
    if question is None:
        return shortcuts
    options = (list(range(1, question["scale"] + 1)) if question["kind"] == "rating"
               else list(question["options"]))
    # the option labels only (the widget's own title is a <label> too, outside the group)
    selector = f".st-key-{widget_key(record_id, question['name'])} [role=radiogroup] label"
    for index, option in enumerate(options[:MAX_NUMBER_KEYS]):
        key = str((index + 1) % 10)
        shortcuts.append(Shortcut(key, selector, index, f"{question['name']} = {option}"))
    return shortcuts


def help_line(shortcuts: list[Shortcut]) -> str:
    """'Keys: 1 quality = 1 · … · Enter submit · s skip' (plain text)."""
    return "Keys: " + " · ".join(f"{s.key} {s.action}" for s in shortcuts)


# Reads window.__flywheelShortcuts on every key press, so one listener serves every rerun. It
# listens in the capture phase: a focused radio button otherwise swallows Enter.
_LISTENER = """
<script>
window.__flywheelShortcuts = %s;
if (!window.__flywheelShortcutsBound) {
  window.__flywheelShortcutsBound = true;
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    const typing = target && (target.tagName === "TEXTAREA" || target.isContentEditable ||
      (target.tagName === "INPUT" && !["radio", "checkbox", "button"].includes(target.type)));
    if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
    const shortcut = (window.__flywheelShortcuts || []).find((s) => s.key === event.key);
    if (!shortcut) return;
    const element = document.querySelectorAll(shortcut.selector)[shortcut.index];
    if (!element || element.offsetParent === null) return;  // absent, or on a hidden tab
    event.preventDefault();
    element.click();
  }, true);
}
</script>
"""


def listener_html(shortcuts: list[Shortcut]) -> str:
    """The script: our own selectors only (widget keys built from validated names), as JSON."""
    spec = [{"key": s.key, "selector": s.selector, "index": s.index} for s in shortcuts]
    return _LISTENER % json.dumps(spec).replace("</", "<\\/")


def install(shortcuts: list[Shortcut]) -> None:
    import streamlit as st
    st.html(listener_html(shortcuts), unsafe_allow_javascript=True)
