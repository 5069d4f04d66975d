"""Session state shared by the pages: who is signed in and the API client built for them."""
from __future__ import annotations

import os

import streamlit as st

from app.ui.client import ApiClient, ApiError, api_url_from_env
from app.ui.safe_text import neutralize

REVIEWER_ROLES = ("annotator", "admin")


def api() -> ApiClient:
    """A client carrying this session's token (login session token or pasted API key)."""
    return ApiClient(base_url=st.session_state.get("api_url") or api_url_from_env(),
                     token=st.session_state.get("token"))


def login_required() -> bool:
    """The `flywheel ui --require-login` setting: chat needs a signed-in user even on an open API."""
    return os.environ.get("FLYWHEEL_UI_REQUIRE_LOGIN", "0") not in ("", "0", "false")


def answer_links() -> bool:
    """The `flywheel ui --answer-links` setting: web addresses in model answers become links."""
    return os.environ.get("FLYWHEEL_UI_ANSWER_LINKS", "0") not in ("", "0", "false")


def role() -> str | None:
    return st.session_state.get("role")


def sign_in(token: str, user_role: str, username: str) -> None:
    st.session_state.update(token=token, role=user_role, username=username)


def sign_out() -> None:
    for key in ("token", "role", "username", "conversation_id", "branch_choices"):
        st.session_state.pop(key, None)


def call(action, *args, **kwargs):
    """Run one client call; on failure show the readable message and return None."""
    try:
        return action(*args, **kwargs)
    except ApiError as e:
        show_api_error(e)
        return None


def show_api_error(error: ApiError) -> None:
    """One readable line: sign-in hint for 401, the server's own words (as plain text) otherwise."""
    if error.status == 401:
        st.warning("This server asks you to sign in: use the Account page in the sidebar.")
    elif error.status == 403:
        st.warning(neutralize(str(error)))
    else:
        st.error(neutralize(str(error)))


def show_flash() -> None:
    """The last action's outcome, in a slot that always exists: a message appearing or leaving
    must not shift the widgets below (Streamlit would remount them and close open expanders)."""
    slot = st.empty()
    if flash := st.session_state.pop("flash", None):
        (slot.success if flash[0] == "success" else slot.error)(neutralize(flash[1]))
