"""One review-queue item: the prompt and answer, its feedback, labels, sibling comparison and the
accept / reject / rewrite actions. User and model text is always neutralized before display."""
from __future__ import annotations

import streamlit as st

from app.ui.client import ApiError
from app.ui.review_queue import feedback_summary, latest_correction
from app.ui.safe_text import label, neutralize
from app.ui.session import api, call


def _label(message_id: str, verdict: str, rewrite: str | None = None, preferred: str | None = None) -> None:
    try:
        api().label(message_id, verdict, rewrite=rewrite, preferred_message_id=preferred)
        st.session_state["flash"] = ("success", f"Labelled {verdict}.")
    except ApiError as e:
        st.session_state["flash"] = ("error", f"Label not saved: {e}")


def _rewrite(message_id: str, key: str) -> None:
    text = (st.session_state.get(f"rewrite_{key}") or "").strip()
    if not text:
        st.session_state["flash"] = ("error", "Write the better answer before saving a rewrite.")
        return
    _label(message_id, "rewrite", rewrite=text)


def siblings_side_by_side(item: dict) -> None:
    """Every answer to the same prompt in columns, each with a 'prefer this' button."""
    siblings = call(api().siblings, item["message_id"])
    if not siblings or len(siblings) < 2:
        st.caption("This answer has no sibling answers to compare.")
        return
    for column, sibling in zip(st.columns(len(siblings)), siblings):
        with column.container(border=True):
            st.markdown(neutralize(sibling.get("content", "")))
            preferred_is_item = sibling["id"] == item["message_id"]
            which = "this answer" if preferred_is_item else "sibling answer"
            st.caption(label(f"{which} · model {sibling.get('model_version') or '?'}"))
            st.button("Prefer this", key=f"prefer_{item['message_id']}_{sibling['id']}", on_click=_label,
                      args=(item["message_id"], "accept" if preferred_is_item else "reject", None, sibling["id"]))


def review_item(card: dict) -> None:
    """One answer with all its feedback (see `review_queue.group_by_answer`)."""
    key = card["message_id"]
    with st.container(border=True):
        st.caption(label(f"model {card.get('model_version') or '?'} · {len(card['feedback'])} feedback item(s)"))
        st.markdown("**Prompt**")
        st.markdown(neutralize(card["prompt"]))
        st.markdown("**Answer**")
        st.markdown(neutralize(card["answer"]))
        for entry in card["feedback"]:
            st.caption(label(feedback_summary(entry)))  # tags are names: hidden characters shown
            if entry.get("comment"):
                st.markdown("**Comment:** " + neutralize(entry["comment"]))
            if entry.get("correction"):
                st.markdown("**User's better answer:** " + neutralize(entry["correction"]))
        for given in card.get("labels", []):
            st.caption(label(f"label by {given.get('annotator')}: {given.get('verdict')}"))
        accept, reject, _ = st.columns([1, 1, 6])
        accept.button("Accept", key=f"accept_{key}", on_click=_label, args=(key, "accept"))
        reject.button("Reject", key=f"reject_{key}", on_click=_label, args=(key, "reject"))
        with st.expander("Rewrite"):
            st.text_area("Better answer", value=latest_correction(card) or card["answer"], key=f"rewrite_{key}")
            st.button("Save rewrite", key=f"save_rewrite_{key}", on_click=_rewrite, args=(key, key))
        if st.toggle("Compare sibling answers", key=f"siblings_{key}"):  # fetched only when asked for
            siblings_side_by_side(card)
