"""The chat sidebar's conversations: a search box, the list (newest first), and for the open
conversation rename and export (Markdown, JSON). Titles are untrusted text: shown with
`safe_text.label` (hidden and bidi characters made visible), never as markup.

Search runs on the server (`?q=`: titles and message text, ignoring case). Exports are fetched
when a download button is clicked, not on every redraw.
"""
from __future__ import annotations

from functools import partial

import streamlit as st

from app.ui.client import ApiClient, ApiError
from app.ui.conversation_client import (EXPORT_FORMATS, export_conversation, rename_conversation,
                                        search_conversations)
from app.ui.safe_text import label
from app.ui.session import api, call, show_api_error

_EXPORT_LABELS = {"md": "Markdown", "json": "JSON"}


def conversation_list() -> None:
    """Search box and one button per conversation; a click opens it."""
    query = st.text_input("Search conversations", key="conversation_search",
                          placeholder="words in a title or message")
    conversations = call(search_conversations, api(), query or "")
    if conversations is None:
        return
    if query.strip() and not conversations:
        st.caption("No conversation matches.")
    current = st.session_state.get("conversation_id")
    for conv in conversations:
        if st.button(label(conv.get("title") or "Untitled"), key=f"conv_{conv['id']}",
                     width="stretch", type="primary" if conv["id"] == current else "secondary"):
            st.session_state.update(conversation_id=conv["id"], branch_choices={})
            st.rerun()  # the list redraws with the opened one highlighted


def conversation_tools(conversation: dict) -> None:
    """Rename and export the open conversation."""
    cid = conversation["id"]
    with st.expander("Rename or export"):
        title = st.text_input("Title", value=conversation.get("title") or "", key=f"title_{cid}",
                              max_chars=256)
        if st.button("Rename", key=f"rename_{cid}"):
            try:
                rename_conversation(api(), cid, title)
                st.session_state["flash"] = ("success", "Conversation renamed.")
                st.rerun()
            except ApiError as e:
                show_api_error(e)
        for fmt, mime in EXPORT_FORMATS.items():
            st.download_button(f"Export as {_EXPORT_LABELS[fmt]}", key=f"export_{fmt}_{cid}",
                               data=partial(_export_text, api(), cid, fmt),
                               file_name=f"{cid}.{fmt}", mime=mime, on_click="ignore")


def _export_text(client: ApiClient, conversation_id: str, fmt: str) -> str:
    """Runs on Streamlit's download thread: a failure becomes the file's one line, not a crash."""
    try:
        return export_conversation(client, conversation_id, fmt)
    except ApiError as e:
        return f"Export failed: {e}\n"
