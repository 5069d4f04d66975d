"""Models page: registered versions, their lineage, and promote / rollback for admins."""
import streamlit as st

from app.ui.client import ApiError
from app.ui.eval_set_widgets import eval_sets_section
from app.ui.lineage import (gate_comparison, gate_reasons, lineage_dot, run_rows, version_label,
                            version_rows)
from app.ui.model_picker import picker_labels
from app.ui.safe_text import neutralize
from app.ui.session import api, call, role, show_api_error, show_flash


def admin_actions(versions: list[dict]) -> None:
    st.subheader("Promote or roll back")
    by_id = {v["id"]: v for v in versions}  # ids as options: the choice survives a status change
    chosen = by_id[st.selectbox("Version", list(by_id), key="version_choice",
                                format_func=lambda i: version_label(by_id[i]))]
    promote, rollback, _ = st.columns([1, 1, 4])
    for column, action, label in ((promote, api().promote, "Promote"), (rollback, api().rollback, "Roll back")):
        if column.button(label, key=f"{label}_{chosen['id']}"):
            try:
                action(chosen["id"])
                st.session_state["flash"] = ("success", f"{label} of {chosen.get('name') or chosen['id']} done.")
            except ApiError as e:
                st.session_state["flash"] = ("error", f"{label} failed: {e}")
            st.rerun()


def gate_details(versions: list[dict]) -> None:
    """Why each flywheel version was promoted or not: the gate's reasons and the numbers it compared."""
    judged = [v for v in versions if gate_reasons(v)]
    if not judged:
        return
    st.subheader("Promotion gate")
    by_id = {v["id"]: v for v in judged}
    chosen = by_id[st.selectbox("Version", list(by_id), key="gate_version",
                                format_func=lambda i: version_label(by_id[i]))]
    for reason in gate_reasons(chosen):
        st.markdown("- " + neutralize(reason))
    if rows := gate_comparison(chosen):
        import altair as alt
        import pandas as pd

        chart = alt.Chart(pd.DataFrame(rows)).mark_bar().encode(
            x=alt.X("percent:Q", title="pass rate (%)", scale=alt.Scale(domain=[0, 100])),
            y=alt.Y("model:N", title=None), color="model:N", row=alt.Row("measure:N", title=None))
        st.altair_chart(chart)


def flywheel_runs() -> None:
    """Recent flywheel iterations, and for admins a button that queues one more."""
    st.subheader("Flywheel iterations")
    if role() == "admin" and st.button("Run one flywheel iteration", icon=":material/autorenew:"):
        if queued := call(api().iterate):
            st.success(neutralize(f"Iteration {queued['id']} queued; a `flywheel worker` runs it."))
    try:
        runs = api().flywheel_runs()
    except ApiError as e:
        if e.status != 404:
            show_api_error(e)
        return
    if runs:
        st.dataframe(run_rows(runs), hide_index=True)
    else:
        st.caption("No iteration has run yet.")


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
if reachable and (served := call(api().model_cards)):
    st.caption("Served now: " + neutralize(", ".join(picker_labels(served).values())))
if versions is not None and not versions:
    st.info("No model version is registered yet. The flywheel registers one after each fine-tune.")
if versions:
    st.dataframe(version_rows(versions), hide_index=True)
    st.subheader("Lineage")
    st.graphviz_chart(lineage_dot(versions))
    gate_details(versions)
    if role() == "admin":
        admin_actions(versions)
if reachable:
    flywheel_runs()
    eval_sets_section()
