"""Widgets drawn under chat messages: feedback (thumbs, stars, tags, comment, correction),
regenerate, sibling navigation and edit-and-resend. Actions are queued in `st.session_state.pending`
and carried out by the chat page after the history is drawn, so streaming happens in page order.
"""
from __future__ import annotations

import streamlit as st

from app.ui.client import ApiError
from app.ui.conversation_tree import parent_key, sibling_position
from app.ui.safe_text import label, neutralize
from app.ui.session import api

REASON_TAGS = ["incorrect", "unhelpful", "incomplete", "too long", "off-topic", "unsafe", "well written"]
THUMBS = {0: "down", 1: "up"}


def _post_feedback(message_id: str, **fields) -> bool:
    """Update the user's one feedback record on the message with `fields` (the API keeps the
    fields not sent). Success shows as "feedback saved" under the answer, not as a second note."""
    try:
        api().send_feedback(message_id, **fields)
        return True
    except ApiError as e:
        st.session_state["flash"] = ("error", f"Feedback not saved: {e}")
        return False


def _on_thumbs(message_id: str) -> None:
    value = st.session_state.get(f"thumbs_{message_id}")
    if value is not None:
        _post_feedback(message_id, thumbs=THUMBS[value])


def _on_stars(message_id: str) -> None:
    value = st.session_state.get(f"stars_{message_id}")
    if value is not None:
        _post_feedback(message_id, rating=value + 1)


def _on_details(message_id: str) -> None:
    """'Send feedback': adds what the panel holds to the record the thumb or stars started, then
    empties the text boxes and closes the panel."""
    thumbs = st.session_state.get(f"thumbs_{message_id}")
    stars = st.session_state.get(f"stars_{message_id}")
    text = {name: (st.session_state.get(f"{name}_{message_id}") or "").strip() or None
            for name in ("comment", "correction")}
    fields = {"thumbs": THUMBS.get(thumbs), "rating": None if stars is None else stars + 1,
              "tags": st.session_state.get(f"tags_{message_id}") or None, **text}
    fields = {name: value for name, value in fields.items() if value is not None}  # absent: kept
    if not fields:
        st.session_state["flash"] = ("error",
                                     "Pick a rating, a tag, or write a comment or a better answer.")
        return
    if _post_feedback(message_id, **fields):
        st.session_state[f"comment_{message_id}"] = ""
        st.session_state[f"correction_{message_id}"] = ""
        # a panel under a new key is a new element, drawn closed (the browser keeps an open
        # expander open whatever the server's state says)
        st.session_state[f"sent_{message_id}"] = st.session_state.get(f"sent_{message_id}", 0) + 1


def sibling_switcher(message: dict, messages: list[dict]) -> None:
    """'< 2/3 >' buttons when a message has siblings (regenerated answers, edited prompts)."""
    siblings, index = sibling_position(messages, message)
    if len(siblings) < 2:
        return
    key = parent_key(message, messages)
    left, middle, right, _ = st.columns([1, 2, 1, 8], vertical_alignment="center")
    choices = st.session_state.setdefault("branch_choices", {})
    if left.button("‹", key=f"prev_{message['id']}", disabled=index == 0):
        choices[key] = siblings[index - 1]["id"]
        st.rerun()
    middle.caption(f"version {index + 1} of {len(siblings)}")
    if right.button("›", key=f"next_{message['id']}", disabled=index == len(siblings) - 1):
        choices[key] = siblings[index + 1]["id"]
        st.rerun()


def answer_facts(message: dict) -> str:
    """'stories260K-hf · 30 tokens · first token 5 ms · 120 ms' from the stored answer."""
    parts = [str(message.get("model_version") or "")]
    if message.get("completion_tokens") is not None:
        parts.append(f"{message['completion_tokens']} tokens")
    if message.get("ttft_ms") is not None:
        parts.append(f"first token {message['ttft_ms']:.0f} ms")
    if message.get("latency_ms") is not None:
        parts.append(f"{message['latency_ms']:.0f} ms")
    return " · ".join(p for p in parts if p)


def answer_feedback(message: dict) -> None:
    """Facts, thumbs, stars, regenerate and a details form under one assistant answer."""
    mid = message["id"]
    if facts := answer_facts(message):
        st.caption(label(facts))  # the model version is a name: hidden characters shown
    cols = st.columns([1, 2, 2, 5], vertical_alignment="center")
    with cols[0]:
        st.feedback("thumbs", key=f"thumbs_{mid}", on_change=_on_thumbs, args=(mid,))
    with cols[1]:
        st.feedback("stars", key=f"stars_{mid}", on_change=_on_stars, args=(mid,))
    if cols[2].button("Regenerate", key=f"regen_{mid}", icon=":material/refresh:"):
        st.session_state["pending"] = {"kind": "regenerate", "message_id": mid}
    if message.get("feedback"):
        cols[3].caption("feedback saved")
    sent = st.session_state.get(f"sent_{mid}", 0)  # 'Send feedback' closes the panel (_on_details)
    with st.expander("Tell us more / write the better answer", key=f"more_{mid}_{sent}"):
        st.multiselect("Reasons", REASON_TAGS, key=f"tags_{mid}")
        st.text_input("Comment", key=f"comment_{mid}")
        st.text_area("Write the better answer", key=f"correction_{mid}")
        st.button("Send feedback", key=f"send_{mid}", on_click=_on_details, args=(mid,))


def edit_box(message: dict) -> None:
    """Edit a user message and resend it: the edit becomes a new branch next to the original."""
    with st.expander("Edit and resend"):
        text = st.text_area("Edited message", value=message["content"], key=f"edit_{message['id']}")
        if st.button("Resend", key=f"resend_{message['id']}") and text.strip():
            st.session_state["pending"] = {"kind": "edit", "message_id": message["id"], "content": text}
