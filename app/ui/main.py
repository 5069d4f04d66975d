"""Streamlit entrypoint: `streamlit run app/ui/main.py` (or `flywheel ui`). Pages depend on the role.

A server that wants a sign-in shows nothing but the sign-in page to a visitor who has not signed
in; on a new install that page is the form creating the admin account. The page icon is a file
served by Streamlit itself: a `:material/...` page icon makes the browser fetch it from a CDN.
"""
from pathlib import Path

import streamlit as st

from app.ui.safe_text import neutralize
from app.ui.session import REVIEWER_ROLES, api, login_required, role
from app.ui.style import apply_style

FAVICON = Path(__file__).parent / "assets" / "favicon.png"

st.set_page_config(page_title="Flywheel", page_icon=str(FAVICON), layout="wide")
apply_style()
# Above every page: the server answers but is degraded (store down, outbox full, model loading).
if (readiness := api().readiness()) is not None and not readiness.ready:
    st.warning("The service is degraded: " + neutralize("; ".join(readiness.reasons)),
               icon=":material/warning:")
status = api().auth_status() or {}
st.session_state["needs_admin"] = bool(status.get("needs_admin"))
if role() is None and (login_required() or status.get("login_required")):
    pages = [st.Page("pages/login.py", title="Sign in", icon=":material/login:", default=True)]
else:
    pages = [st.Page("pages/chat.py", title="Chat", icon=":material/chat:", default=True)]
    if role() in REVIEWER_ROLES:
        pages.append(st.Page("pages/review.py", title="Review", icon=":material/rate_review:"))
        pages.append(st.Page("pages/annotate.py", title="Annotate", icon=":material/label:"))
    pages += [
        st.Page("pages/models.py", title="Models", icon=":material/account_tree:"),
        st.Page("pages/report.py", title="Report card", icon=":material/monitoring:"),
        st.Page("pages/login.py", title="Account", icon=":material/login:"),
    ]
st.navigation(pages).run()
