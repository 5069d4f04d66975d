"""Chat actions that stream an answer: a new message, a regenerate (a sibling answer) and an edited
user message (a sibling branch). They draw into the page in order and remember which branch of
the conversation tree to show next. With the demo tools on, an answer that calls them is
followed by their results and the model's next answer (`app.ui.chat_tools`)."""
from __future__ import annotations

import time

import streamlit as st

from app.ui.chat_render import render_tool_call, render_tool_result
from app.ui.chat_tools import (MAX_TOOL_ROUNDS, ToolSettings, assistant_turn, narrower_fields,
                               request_fields, run_calls)
from app.ui.client import ApiError, ChatIds, completion_room
from app.ui.conversation_tree import ROOT, parent_key
from app.ui.safe_text import neutralize, neutralize_stream
from app.ui.session import answer_links, api, show_api_error

STOP_WAIT_S = 5.0  # the server notices a closed stream within its next token or disconnect poll
STREAMING = "streaming_answer"  # session key: the ChatIds of the answer being streamed


def answer(history: list[dict], extra: dict, model: str, sampling: dict,
           tools: ToolSettings = ToolSettings()) -> str | None:
    """Stream the answer to `history`; while it calls the demo tools, run them, show their
    results and stream the next answer (each request stores its turns, so the conversation
    keeps calls and results). Returns the last answer's stored id; None on an error."""
    history, called = list(history), set()
    for round_index in range(MAX_TOOL_ROUNDS + 1):
        ids = stream_answer(history, extra, model, sampling, request_fields(tools, round_index),
                            round_index, called)
        if ids is None or not ids.tool_calls:
            return ids.message_id if ids else None
        called |= {call["function"]["name"] for call in ids.tool_calls}
        results = run_calls(ids.tool_calls)
        for result in results:
            with st.chat_message("tool"):
                render_tool_result(result["content"])
        history += [assistant_turn(ids.text, ids.tool_calls), *results]
        # the results continue from the answer that called (as its children in the tree)
        extra = {"conversation_id": ids.conversation_id, "parent_message_id": ids.message_id}
    return None  # not reached: the last round asks with tool_choice "none"


def stream_answer(history: list[dict], extra: dict, model: str, sampling: dict,
                  tool_fields: dict | None = None, round_index: int = 0,
                  called: set[str] = frozenset()) -> ChatIds | None:
    """Stream one answer into an assistant bubble (its tool calls drawn under the text);
    returns what the stream carried (ids, text, calls), None on an error.

    A "Stop generating" button sits above the streaming text. Clicking it (or any widget) makes
    Streamlit interrupt this run at the next chunk it draws; the `finally` closes the stream, the
    server sees the client go and stores the text so far with finish_reason "abort", and the
    next run shows it (`settle_stopped_answer`). An interrupted run cannot write session state
    any more (each write is an interruption point), so the ids live in an object put there
    before the stream starts and filled in place as chunks arrive.

    A request refused for not fitting the model's context is sent again (three times at most)
    the way it may fit: max_tokens cut to the room left, or (a tool follow-up) fewer tool
    definitions shown (`chat_tools.narrower_fields`)."""
    ids = ChatIds()
    st.session_state[STREAMING] = ids
    fields = tool_fields or {}
    with st.chat_message("assistant"):
        stop_key = "stop_answer" if round_index == 0 else f"stop_answer_{round_index}"
        st.button("Stop generating", key=stop_key, help="Stop here; the text so far is kept")
        for attempt in range(4):
            stream = api().stream_chat(history, ids, model=model, sampling=sampling,
                                       extra=extra | fields)
            chunks = neutralize_stream(stream, links=answer_links())
            try:
                st.write_stream(chunks)
                break
            except ApiError as e:
                can_refit = attempt < 3 and not ids.text  # nothing shown yet
                refit = _refit(e, sampling, fields, round_index, called) if can_refit else None
                if refit is None:
                    st.session_state.pop(STREAMING, None)  # nothing to wait for
                    show_api_error(e)
                    return None
                sampling, fields = refit
            finally:
                chunks.close()  # closing the outer generator finalizes the HTTP stream inside it
        for call in ids.tool_calls:
            render_tool_call(call["function"]["name"], call["function"]["arguments"])
    st.session_state.pop(STREAMING, None)
    st.session_state["conversation_id"] = ids.conversation_id or st.session_state.get("conversation_id")
    return ids


def _refit(error: ApiError, sampling: dict, fields: dict, round_index: int,
           called: set[str]) -> tuple[dict, dict] | None:
    """(sampling, tool fields) that may fit the context `error` says was exceeded; None: no
    way. The question itself keeps its tools: without them the user's switch would mean nothing."""
    room = completion_room(error)
    if room is not None:
        return sampling | {"max_tokens": room}, fields
    too_long = round_index > 0 and error.param == "messages"  # the prompt itself
    narrower = narrower_fields(fields, called) if too_long else None
    return (sampling, narrower) if narrower is not None else None


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


def run_pending(path: list[dict], messages: list[dict], model: str, sampling: dict,
                tools: ToolSettings = ToolSettings()) -> bool:
    """Carry out a queued regenerate or edit, then remember which branch to show; True on success."""
    pending = st.session_state.pop("pending")
    index = next((i for i, m in enumerate(path) if m["id"] == pending["message_id"]), None)
    if index is None:  # the message left the screen (another branch was picked): nothing to do
        return False
    turns = [{"role": m["role"], "content": m["content"]} for m in path]
    extra = {"conversation_id": st.session_state.get("conversation_id")}
    choices = st.session_state.setdefault("branch_choices", {})
    if pending["kind"] == "regenerate":
        new_id = answer(turns[:index], extra | {"regenerate_of": pending["message_id"]}, model,
                        sampling, tools)
        if new_id:
            choices[parent_key(path[index], messages)] = new_id
        return new_id is not None
    if index > 0:
        extra["parent_message_id"] = path[index - 1]["id"]
    else:  # the API attaches parentless turns to the latest message: an edited opening starts anew
        extra, st.session_state["branch_choices"] = {}, {}
    with st.chat_message("user"):
        st.markdown(neutralize(pending["content"]))
    edited = turns[:index] + [{"role": "user", "content": pending["content"]}]
    if not answer(edited, extra, model, sampling, tools):
        return False
    choices.pop(path[index - 1]["id"] if index > 0 else ROOT, None)  # the newest branch is shown
    return True
