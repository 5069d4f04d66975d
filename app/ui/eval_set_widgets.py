"""Models page section: the eval sets the flywheel's gate runs as regression suites on every
candidate. Everyone who can see the page sees the list; admins add a set from a JSONL file and
remove sets. The file is checked here first, so a bad line is named before anything is sent."""
from __future__ import annotations

import streamlit as st

from app.flywheel.eval_set_items import EvalSetInputError, parse_jsonl
from app.ui.client import ApiError
from app.ui.safe_text import neutralize
from app.ui.session import api, role, show_api_error

FORMAT_HELP = ('One JSON object per line: {"messages": [{"role": "user", "content": "..."}], '
               '"expected": "..."} (the last message from the user), or {"prompt": "...", '
               '"expected": "..."}. An answer passes when it contains the expected text.')


def eval_set_rows(sets: list[dict]) -> list[dict]:
    """Rows for st.dataframe (which shows cells as plain text, never markdown)."""
    return [{"name": s["name"], "items": s["item_count"],
             "created": s["created_at"][:16].replace("T", " "),
             "by": s.get("created_by") or "command line", "sha256": s["content_sha256"][:12],
             "description": s.get("description", "")} for s in sets]


def eval_sets_section() -> None:
    st.subheader("Eval sets")
    st.caption("Regression suites: a fine-tuned candidate is not promoted if it drops beyond the "
               "gate's threshold on any of them.")
    try:
        sets = api().eval_sets()
    except ApiError as e:
        if e.status != 404:  # a server without the route: nothing to show
            show_api_error(e)
        return
    if sets:
        st.dataframe(eval_set_rows(sets), hide_index=True, key="eval_sets_table")
    else:
        st.caption("No eval set is registered yet.")
    if role() == "admin":
        _add_form()
        if sets:
            _remove([s["name"] for s in sets])


def _add_form() -> None:
    with st.form("eval_set_add"):
        name = st.text_input("Name", key="eval_set_name", help="Letters, digits, '.', '_' or '-'.")
        description = st.text_input("Description", key="eval_set_description")
        upload = st.file_uploader("JSONL file", type=["jsonl", "json", "txt"], key="eval_set_file",
                                  help=FORMAT_HELP)
        replace = st.checkbox("Replace a set of the same name", key="eval_set_replace")
        submitted = st.form_submit_button("Add eval set")
    if not submitted:
        return
    if upload is None:
        st.error("Choose a JSONL file to upload.")
        return
    try:
        items = parse_jsonl(upload.getvalue())
    except EvalSetInputError as e:
        st.error(neutralize(f"{upload.name}: {e}"))
        return
    try:
        added = api().add_eval_set(name.strip(), [item.to_dict() for item in items], description,
                                   replace)
    except ApiError as e:
        show_api_error(e)
        return
    verb = "Replaced" if added.get("replaced") else "Added"
    st.session_state["flash"] = (
        "success", f"{verb} eval set {added['name']} ({added['item_count']} items).")
    st.rerun()


def _remove(names: list[str]) -> None:
    choice, button = st.columns([3, 1], vertical_alignment="bottom")
    chosen = choice.selectbox("Eval set to remove", names, key="eval_set_choice")
    if button.button("Remove eval set", key=f"remove_eval_set_{chosen}"):
        try:
            api().remove_eval_set(chosen)
            st.session_state["flash"] = ("success", f"Removed eval set {chosen}.")
        except ApiError as e:
            st.session_state["flash"] = ("error", f"Removing {chosen} failed: {e}")
        st.rerun()
