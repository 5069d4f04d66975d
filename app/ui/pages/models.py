"""Models page: registered versions, their lineage, and promote / rollback for admins."""
import streamlit as st

from app.ui.client import ApiError
from app.ui.lineage import lineage_dot, version_rows
from app.ui.session import api, call, role, show_api_error, show_flash


def admin_actions(versions: list[dict]) -> None:
    st.subheader("Promote or roll back")
    chosen = st.selectbox("Version", versions, format_func=lambda v: f"{v.get('name') or v['id']} ({v.get('status')})")
    promote, rollback, _ = st.columns([1, 1, 4])
    for column, action, label in ((promote, api().promote, "Promote"), (rollback, api().rollback, "Roll back")):
        if column.button(label, key=f"{label}_{chosen['id']}"):
            try:
                action(chosen["id"])
                st.session_state["flash"] = ("success", f"{label} of {chosen.get('name') or chosen['id']} done.")
            except ApiError as e:
                st.session_state["flash"] = ("error", f"{label} failed: {e}")
            st.rerun()


st.title("Models")
show_flash()
versions, reachable = None, True
try:
    versions = api().model_versions()
except ApiError as e:
    reachable = e.status is not None
    if e.status == 404:
        st.info("The model registry is not available on this server yet.")
    else:
        show_api_error(e)
if versions is not None and not versions:
    st.info("No model version is registered yet. The flywheel registers one after each fine-tune.")
if versions:
    st.dataframe(version_rows(versions), hide_index=True)
    st.subheader("Lineage")
    st.graphviz_chart(lineage_dot(versions))
    if role() == "admin":
        admin_actions(versions)
if reachable and (served := call(api().models)):
    st.caption("Served now: " + ", ".join(served))
