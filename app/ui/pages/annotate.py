"""Annotation console (annotators and admins), Argilla-style: pick a dataset, label the next item
with the written guidelines beside it (number keys, Enter, S), see everyone's progress and the
agreement per question, export for `datasets.load_dataset`."""
import streamlit as st

from app.ui.annotation_view import agreement_rows, progress_rows
from app.ui.annotation_widgets import add_records_form, annotate, client, create_dataset_form, show_item
from app.ui.safe_text import neutralize
from app.ui.session import REVIEWER_ROLES, call, role, show_flash

st.title("Annotate")
if role() not in REVIEWER_ROLES:
    st.warning("Annotation is for annotators and admins. Sign in on the Account page.")
    st.stop()
show_flash()
if role() == "admin":
    create_dataset_form()
datasets = call(client().datasets) or []
if not datasets:
    st.info("No annotation dataset yet." + (" Create one above." if role() == "admin" else ""))
    st.stop()
dataset = st.selectbox("Dataset", datasets, format_func=lambda d: f"{d['name']} · {d['num_records']} records")
name = dataset["name"]
if role() == "admin":
    add_records_form(name)
label_tab, progress_tab, agreement_tab, export_tab = st.tabs(["Label", "Progress", "Agreement", "Export"])
with label_tab:
    guidelines, item = st.columns([1, 2])
    with guidelines.container(border=True):
        st.markdown("**Guidelines**")
        st.markdown(neutralize(dataset["guidelines"]) or "_No guidelines written._")
    with item:
        record = call(client().next_record, name)
        if record is None:
            st.success("Nothing left for you in this dataset.")
        else:
            show_item(record)
            annotate(dataset, record)
with progress_tab:
    if progress := call(client().progress, name):
        done, pending, total = st.columns(3)
        total.metric("Records", progress["num_records"])
        done.metric(f"Done ({dataset['min_submitted']} annotators each)", progress["completed"])
        pending.metric("Pending", progress["pending"])
        st.dataframe(progress_rows(progress, dataset["questions"]), hide_index=True)
with agreement_tab:
    if (agreement := call(client().agreement, name)) is not None:
        st.dataframe(agreement_rows(agreement), hide_index=True)
        st.caption("Cohen's kappa needs exactly two annotators on shared records; Krippendorff's alpha "
                   "works for any number (nominal for labels, ordinal and interval for ratings).")
with export_tab:
    if st.toggle("Prepare downloads", key="ann_export"):
        for column, kind in zip(st.columns(2), ("jsonl", "parquet")):
            if (body := call(client().export, name, kind)) is not None:
                column.download_button(f"{kind.upper()}", body, file_name=f"{name}.{kind}", key=f"ann_dl_{kind}")
        st.caption('Load with datasets.load_dataset("json" or "parquet", data_files=...).')
