"""Account page: sign in with username and password, or paste an API key; sign out. On a new
install (nobody can sign in yet) it is the form that creates the admin account."""
import streamlit as st

from app.ui.client import ApiClient, ApiError
from app.ui.safe_text import label, neutralize
from app.ui.session import api, role, sign_in, sign_out


def create_admin_form() -> None:
    """A new install: nobody can sign in yet, so the first visitor creates the admin account."""
    st.info("Welcome! This server has no account yet. Create the admin account: it can add "
            "users, annotators and API keys afterwards.")
    with st.form("create_admin"):
        username = st.text_input("Admin username", value="admin")
        password = st.text_input("Password (8 characters or more)", type="password")
        repeat = st.text_input("Repeat the password", type="password")
        submitted = st.form_submit_button("Create admin account", type="primary")
    if not submitted:
        return
    if len(password) < 8 or password != repeat:
        st.error("The password needs 8 characters or more, typed the same twice.")
        return
    try:
        session = api().setup_admin(username.strip(), password)
    except ApiError as e:
        st.error(neutralize(str(e)))
        return
    st.session_state.pop("needs_admin", None)
    sign_in(session["token"], session["role"], username.strip())
    st.rerun()


st.title("Account")
if role():
    st.success(f"Signed in as {label(st.session_state.get('username', ''))} ({role()}).")
    if st.button("Sign out"):
        sign_out()
        st.rerun()
    st.stop()
if st.session_state.get("needs_admin"):
    create_admin_form()
    st.stop()

with st.form("login"):
    username = st.text_input("Username")
    password = st.text_input("Password", type="password")
    submitted = st.form_submit_button("Sign in")
if submitted:
    if not username or not password:
        st.error("Enter a username and a password.")
    else:
        try:
            session = api().login(username, password)
            sign_in(session["token"], session.get("role", "user"), username)
            st.rerun()
        except ApiError as e:  # a 401 here means wrong credentials, not "please sign in"
            st.error(neutralize(str(e)))



def key_role(key: str) -> str | None:
    """'annotator' or 'user' for a working key (the server decides what it may do; the UI only picks
    which pages to show), None after showing why the key does not work."""
    probe = ApiClient(base_url=api().base_url, token=key)
    try:
        probe.models()
    except ApiError as e:
        st.error(neutralize(str(e)))
        return None
    try:
        probe.agreement()
        return "annotator"
    except ApiError:
        return "user"


with st.expander("Use an API key instead"):
    key = st.text_input("API key", type="password", key="api_key_input")
    if st.button("Use key") and key and (found := key_role(key)):
        sign_in(key, found, "API key")
        st.rerun()
