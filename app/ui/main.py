"""Streamlit entrypoint: `streamlit run app/ui/main.py` (or `flywheel ui`). Pages depend on the role."""
import streamlit as st

from app.ui.safe_text import neutralize
from app.ui.session import REVIEWER_ROLES, api, role

st.set_page_config(page_title="Flywheel", page_icon=":material/cyclone:", layout="wide")
# Above every page: the server answers but is degraded (store down, outbox full, model loading).
if (readiness := api().readiness()) is not None and not readiness.ready:
    st.warning("The service is degraded: " + neutralize("; ".join(readiness.reasons)),
               icon=":material/warning:")

pages = [st.Page("pages/chat.py", title="Chat", icon=":material/chat:", default=True)]
if role() in REVIEWER_ROLES:
    pages.append(st.Page("pages/review.py", title="Review", icon=":material/rate_review:"))
pages += [
    st.Page("pages/models.py", title="Models", icon=":material/account_tree:"),
    st.Page("pages/report.py", title="Report card", icon=":material/monitoring:"),
    st.Page("pages/login.py", title="Account", icon=":material/login:"),
]
st.navigation(pages).run()
