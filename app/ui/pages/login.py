"""Account page: sign in with username and password, or paste an API key; sign out."""
import streamlit as st

from app.ui.client import ApiClient, ApiError
from app.ui.safe_text import neutralize
from app.ui.session import api, call, role, sign_in, sign_out

st.title("Account")
if role():
    st.success(f"Signed in as {neutralize(st.session_state.get('username', ''))} ({role()}).")
    if st.button("Sign out"):
        sign_out()
        st.rerun()
    st.stop()

with st.form("login"):
    username = st.text_input("Username")
    password = st.text_input("Password", type="password")
    submitted = st.form_submit_button("Sign in")
if submitted:
    if not username or not password:
        st.error("Enter a username and a password.")
    elif session := call(api().login, username, password):
        sign_in(session["token"], session.get("role", "user"), username)
        st.rerun()

with st.expander("Use an API key instead"):
    key = st.text_input("API key", type="password", key="api_key_input")
    if st.button("Use key") and key:
        # The server decides what a key may do; probing the review API tells the UI which pages to show.
        probe = ApiClient(base_url=api().base_url, token=key)
        try:
            probe.agreement()
            key_role = "admin"
        except ApiError:
            key_role = "user"
        sign_in(key, key_role, "API key")
        st.rerun()
