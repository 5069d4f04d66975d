"""Review console (annotators and admins): filtered queue, labels, agreement, dataset snapshots."""
import datetime as dt

import streamlit as st

from app.ui.review_queue import group_by_answer
from app.ui.review_widgets import review_item
from app.ui.session import REVIEWER_ROLES, api, call, role, show_flash

MAX_ITEMS_SHOWN = 20


def filters() -> dict:
    with st.sidebar:
        st.header("Filters")
        thumbs = st.selectbox("Thumbs", ["any", "down", "up"])
        rating = st.selectbox("Stars", ["any", 1, 2, 3, 4, 5])
        tag = st.text_input("Tag")
        model_version = st.text_input("Model version")
        since = st.date_input("Since", value=dt.date.today() - dt.timedelta(days=30))
        until = st.date_input("Until", value=dt.date.today())
        reviewed = st.selectbox("Reviewed", ["not yet", "yes", "any"])
        signal = st.selectbox("Implicit signal", ["none", "regenerated", "stopped"],
                              help="Answers users asked to regenerate or stopped, without feedback")
    return {"thumbs": None if thumbs == "any" else thumbs, "rating": None if rating == "any" else rating,
            "tag": tag.strip(), "model_version": model_version.strip(),
            "since": since.isoformat() if since else None,
            "until": (until + dt.timedelta(days=1)).isoformat() if until else None,
            "reviewed": {"not yet": "false", "yes": "true"}.get(reviewed),
            "signal": None if signal == "none" else signal}


def agreement_panel() -> None:
    stats = call(api().agreement)
    if stats is None:
        return
    a, b, c = st.columns(3)
    a.metric("Items labelled by 2+ annotators", stats.get("items_with_overlap", 0))
    percent, kappa = stats.get("percent_agreement"), stats.get("cohens_kappa")
    b.metric("Percent agreement", "n/a" if percent is None else f"{percent:.1f}%")
    c.metric("Cohen's kappa", "n/a" if kappa is None else f"{kappa:.3f}")


def export_panel() -> None:
    st.subheader("Dataset snapshots")
    if st.button("Export a new snapshot", type="primary"):
        if snap := call(api().create_snapshot):
            note = " (data unchanged: existing version reused)" if snap.get("reused") else ""
            counts = " · ".join(f"{kind.upper()} {count}" for kind, count in snap["counts"].items())
            st.success(f"Snapshot v{snap['version']}{note}: {counts} · sha256 {snap['content_hash'][:16]}…")
    snapshots = call(api().snapshots) or []
    if not snapshots:
        st.caption("No snapshot exported yet.")
        return
    st.dataframe([{"version": s["version"], "sft": s["counts"].get("sft"), "dpo": s["counts"].get("dpo"),
                   "kto": s["counts"].get("kto"), "content hash": s["content_hash"],
                   "created": s["created_at"]} for s in snapshots], hide_index=True)
    chosen = st.selectbox("Download snapshot", snapshots, format_func=lambda s: f"v{s['version']}")
    for column, kind in zip(st.columns(3), ("sft", "dpo", "kto")):
        if (body := call(api().snapshot_file, chosen["id"], kind)) is not None:
            column.download_button(f"{kind.upper()} JSONL", body, file_name=f"v{chosen['version']}-{kind}.jsonl",
                                   key=f"download_{chosen['id']}_{kind}")


st.title("Review console")
if role() not in REVIEWER_ROLES:
    st.warning("The review console is for annotators and admins. Sign in on the Account page.")
    st.stop()
show_flash()
query = filters()
agreement_panel()
queue = call(api().review_queue, **query)
if queue is not None:
    cards = group_by_answer(queue)
    st.subheader(f"Queue — answers: {len(cards)} · feedback items: {len(queue)}")
    if not cards:
        st.info("Nothing to review for these filters.")
    for card in cards[:MAX_ITEMS_SHOWN]:
        review_item(card)
    if len(cards) > MAX_ITEMS_SHOWN:
        st.caption(f"Showing the newest {MAX_ITEMS_SHOWN}; narrow the filters to see others.")
export_panel()
