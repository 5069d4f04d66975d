"""Widgets of the annotation page: the guidelines beside the item, the item, one input per question,
Submit / Skip with keyboard shortcuts, and the admin's dataset builder. Untrusted text (guidelines,
prompts, answers, candidates) is always neutralized: it shows as typed, never as markup."""
from __future__ import annotations

import streamlit as st

from app.ui import shortcuts
from app.ui.annotation_client import AnnotationClient
from app.ui.annotation_view import EXAMPLE_QUESTIONS, KINDS, questions_from_rows, response_values
from app.ui.client import ApiError
from app.ui.safe_text import neutralize
from app.ui.session import api


def client() -> AnnotationClient:
    return AnnotationClient(api())


def show_item(record: dict) -> None:
    with st.container(border=True):
        st.markdown("**Prompt**")
        st.markdown(neutralize(record["prompt"]))
        st.markdown("**Answer**")
        st.markdown(neutralize(record["answer"]))
        for letter, candidate in zip("ABCDEFGHIJKLMNOPQRST", record.get("candidates", [])):
            st.caption(f"Candidate {letter}")
            st.markdown(neutralize(candidate["text"]))


def question_input(question: dict, record: dict):
    """One widget per question kind; its value as the API wants it (None: unanswered)."""
    key = shortcuts.widget_key(record["id"], question["name"])
    label = question["title"] + ("" if question["required"] else " (optional)")
    kind = question["kind"]
    if kind == "rating":
        return st.radio(label, list(range(1, question["scale"] + 1)), index=None, horizontal=True, key=key)
    if kind == "label":
        return st.radio(label, question["options"], index=None, horizontal=True, key=key)
    if kind == "multi_label":
        return st.multiselect(label, question["options"], key=key)
    if kind == "ranking":
        if not record.get("candidates"):
            st.caption(neutralize(f"{label}: this record has no candidate answers to rank."))
            return None
        letters = dict(zip((c["id"] for c in record["candidates"]), "ABCDEFGHIJKLMNOPQRST"))
        return st.multiselect(label + ": pick the candidates best first", list(letters), key=key,
                              format_func=lambda cid: f"Candidate {letters[cid]}")
    return st.text_area(label, value=record["answer"], key=key)


def _send(dataset: dict, record: dict, status: str) -> None:
    """Button callback: reads the widgets' current values from session state (the arguments of a
    callback are from the run before, which may predate the last edit of a text box). A record
    answered in this session is not answered again by a stale button (a key pressed mid-rerun)."""
    done = st.session_state.setdefault("ann_done", set())
    if record["id"] in done:
        return
    widgets = {q["name"]: st.session_state.get(shortcuts.widget_key(record["id"], q["name"]))
               for q in dataset["questions"]}
    values = response_values(dataset["questions"], widgets, record) if status == "submitted" else {}
    try:
        client().respond(dataset["name"], record["id"], values, status=status)
        done.add(record["id"])
        st.session_state["flash"] = ("success", "Submitted." if status == "submitted" else "Skipped.")
    except ApiError as e:
        st.session_state["flash"] = ("error", f"Not saved: {e}")


def annotate(dataset: dict, record: dict) -> None:
    """The item and its questions, Submit and Skip; number keys, Enter and S work too."""
    answered = {q["name"]: question_input(q, record) for q in dataset["questions"]}
    submit, skip, _ = st.columns([1, 1, 2])
    submit.button("Submit", type="primary", key=shortcuts.SUBMIT_KEY, on_click=_send,
                  args=(dataset, record, "submitted"))
    skip.button("Skip", key=shortcuts.SKIP_KEY, on_click=_send, args=(dataset, record, "discarded"))
    keys = shortcuts.shortcut_map(dataset["questions"], answered, record["id"])
    st.caption(neutralize(shortcuts.help_line(keys)))
    shortcuts.install(keys)


def create_dataset_form() -> None:
    """Admin: name, guidelines, annotators per record and the questions (one table row each)."""
    with st.expander("Create a dataset"):
        name = st.text_input("Name", key="ann_new_name")
        guidelines = st.text_area("Guidelines (shown as written beside every item)", key="ann_new_guidelines")
        min_submitted = st.number_input("Annotators per record", 1, 20, 2, key="ann_new_min")
        rows = st.data_editor(EXAMPLE_QUESTIONS, num_rows="dynamic", key="ann_new_questions", column_config={
            "kind": st.column_config.SelectboxColumn("kind", options=KINDS, required=True),
            "scale": st.column_config.NumberColumn("scale (rating)", min_value=2, max_value=10),
            "options": st.column_config.TextColumn("options (comma-separated)"),
            "required": st.column_config.CheckboxColumn("required")})
        if st.button("Create dataset", key="ann_new_create"):
            try:
                client().create_dataset(name.strip(), questions_from_rows(rows), guidelines, int(min_submitted))
                st.session_state["flash"] = ("success", f"Dataset {name.strip()} created.")
                st.rerun()
            except ApiError as e:
                st.error(neutralize(f"Not created: {e}"))


def add_records_form(dataset: str) -> None:
    """Admin: add chat answers (with feedback, or all) to the dataset."""
    with st.expander("Add records from the chats"):
        kind = st.radio("Which answers", ["feedback", "messages"], horizontal=True, key="ann_add_kind",
                        format_func=lambda k: {"feedback": "with feedback", "messages": "all answers"}[k])
        thumbs = st.selectbox("Thumbs", ["any", "down", "up"], key="ann_add_thumbs")
        model_version = st.text_input("Model version", key="ann_add_version")
        limit = st.number_input("At most", 1, 1000, 200, key="ann_add_limit")
        if st.button("Add records", key="ann_add"):
            try:
                added = client().add_from_chats(dataset, kind=kind, limit=int(limit),
                                                thumbs=None if thumbs == "any" else thumbs,
                                                model_version=model_version.strip())
                st.success(f"Added {added['added']} record(s); {added['skipped']} skipped.")
            except ApiError as e:
                st.error(neutralize(f"Not added: {e}"))
