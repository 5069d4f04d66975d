"""The console's stylesheet (app/ui/assets/style.css), added to every page by the entrypoint.

`st.html` with nothing but a <style> element takes no room on the page. The CSS is a constant
file of this package, never user input, so it does not weaken the rule that untrusted text only
reaches the page through `safe_text`."""
from __future__ import annotations

from functools import cache
from pathlib import Path

import streamlit as st

STYLESHEET = Path(__file__).parent / "assets" / "style.css"


@cache
def _css() -> str:
    return STYLESHEET.read_text()


def apply_style() -> None:
    st.html(f"<style>{_css()}</style>")
