"""Chat actions that stream an answer: a new message, a regenerate (a sibling answer) and an edited
user message (a sibling branch). They draw into the page in order and remember which branch of
the conversation tree to show next."""
from __future__ import annotations

import time

import streamlit as st

from app.ui.client import ApiError, ChatIds
from app.ui.conversation_tree import ROOT, parent_key
from app.ui.safe_text import neutralize, neutralize_stream
from app.ui.session import answer_links, api, show_api_error

STOP_WAIT_S = 5.0  # the server notices a closed stream within its next token or disconnect poll
STREAMING = "streaming_answer"  # session key: the ChatIds of the answer being streamed


def stream_answer(history: list[dict], extra: dict, model: str, sampling: dict) -> str | None:
    """Stream one answer into an assistant bubble; returns the stored message id.

    A "Stop generating" button sits above the streaming text. Clicking it (or any widget) makes
    Streamlit interrupt this run at the next chunk it draws; the `finally` closes the stream, the
    server sees the client go and stores the text so far with finish_reason "abort", and the
    next run shows it (`settle_stopped_answer`). An interrupted run cannot write session state
    any more (each write is an interruption point), so the ids live in an object put there
    before the stream starts and filled in place as chunks arrive."""
    ids = ChatIds()
    st.session_state[STREAMING] = ids
    with st.chat_message("assistant"):
        st.button("Stop generating", key="stop_answer", help="Stop here; the text so far is kept")
        chunks = neutralize_stream(api().stream_chat(history, ids, model=model, sampling=sampling,
                                                     extra=extra), links=answer_links())
        try:
            st.write_stream(chunks)
        except ApiError as e:
            st.session_state.pop(STREAMING, None)  # nothing to wait for
            show_api_error(e)
            return None
        finally:
            chunks.close()  # closing the outer generator finalizes the HTTP stream inside it
    st.session_state.pop(STREAMING, None)
    st.session_state["conversation_id"] = ids.conversation_id or st.session_state.get("conversation_id")
    return ids.message_id


def settle_stopped_answer(timeout_s: float = STOP_WAIT_S) -> None:
    """The run after a stopped stream: open its conversation and wait until the server has
    stored the partial answer, so the page shows it (marked stopped) rather than the
    conversation as it was before the question."""
    ids = st.session_state.pop(STREAMING, None)
    if ids is None or not ids.conversation_id:
        return
    st.session_state["conversation_id"] = ids.conversation_id
    deadline = time.monotonic() + timeout_s
    while ids.message_id and time.monotonic() < deadline:
        try:
            if any(m["id"] == ids.message_id for m in api().conversation(ids.conversation_id)["messages"]):
                return
        except ApiError as e:
            if e.status != 404:  # 404: a new conversation, not written yet
                return
        time.sleep(0.1)


def run_pending(path: list[dict], messages: list[dict], model: str, sampling: dict) -> bool:
    """Carry out a queued regenerate or edit, then remember which branch to show; True on success."""
    pending = st.session_state.pop("pending")
    index = next((i for i, m in enumerate(path) if m["id"] == pending["message_id"]), None)
    if index is None:  # the message left the screen (another branch was picked): nothing to do
        return False
    turns = [{"role": m["role"], "content": m["content"]} for m in path]
    extra = {"conversation_id": st.session_state.get("conversation_id")}
    choices = st.session_state.setdefault("branch_choices", {})
    if pending["kind"] == "regenerate":
        new_id = stream_answer(turns[:index], extra | {"regenerate_of": pending["message_id"]}, model, sampling)
        if new_id:
            choices[parent_key(path[index], messages)] = new_id
        return new_id is not None
    if index > 0:
        extra["parent_message_id"] = path[index - 1]["id"]
    else:  # the API attaches parentless turns to the latest message: an edited opening starts anew
        extra, st.session_state["branch_choices"] = {}, {}
    with st.chat_message("user"):
        st.markdown(neutralize(pending["content"]))
    if not stream_answer(turns[:index] + [{"role": "user", "content": pending["content"]}], extra, model, sampling):
        return False
    choices.pop(path[index - 1]["id"] if index > 0 else ROOT, None)  # the newest branch is shown
    return True
