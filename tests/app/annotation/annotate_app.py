"""Test entry for the browser test: the Annotate page alone, signed in from environment variables
(the real entrypoint's sign-in flow is tested elsewhere)."""
import os
import runpy
from pathlib import Path

import streamlit as st

from app.ui.style import apply_style

apply_style()  # the entrypoint's stylesheet (caption contrast)
for key in ("api_url", "token", "role", "username"):
    st.session_state.setdefault(key, os.environ[f"ANNOTATE_{key.upper()}"])
runpy.run_path(str(Path(__file__).resolve().parents[3] / "app" / "ui" / "pages" / "annotate.py"))
