"""Chat page: streaming answers, conversations kept by the API, regenerate, edit, feedback, and
the demo tools (calculator, unit converter) run for the model when switched on."""
import streamlit as st

from app.core.names import reveal_hidden
from app.ui.chat_actions import answer, run_pending, settle_stopped_answer
from app.ui.chat_widgets import answer_feedback, edit_box, sibling_switcher
from app.ui.chat_render import render_message
from app.ui.chat_tools import TOGGLE_LABEL, ToolSettings
from app.ui.client import ApiError
from app.ui.conversation_list import conversation_list, conversation_tools
from app.ui.conversation_tree import active_path
from app.ui.model_picker import picker_labels
from app.ui.safe_text import neutralize
from app.ui.session import (answer_links, api, call, login_required, role, show_api_error,
                            show_flash)


def tool_toggle() -> ToolSettings:
    """The demo tools switch; with it on, whether the first answer must call one."""
    if not st.toggle(TOGGLE_LABEL, key="tools_on",
                     help="The model may call them; the results are computed here and sent back"):
        return ToolSettings()
    required = st.checkbox("Call a tool first", key="tools_required",
                           help="tool_choice \"required\": the first answer is a tool call")
    return ToolSettings(enabled=True, first_choice="required" if required else "auto")


def sidebar(labels: dict[str, str]) -> tuple[str, dict, ToolSettings]:
    """Model picker, tools switch, sampling controls and the conversation list."""
    with st.sidebar:
        model = st.selectbox("Model version", list(labels),
                             format_func=lambda m: reveal_hidden(labels[m]))
        tools = tool_toggle()
        with st.expander("Sampling"):
            sampling = {"temperature": st.slider("Temperature", 0.0, 2.0, 0.8, 0.05),
                        "top_p": st.slider("Top-p", 0.05, 1.0, 1.0, 0.05),
                        "max_tokens": st.number_input("Max tokens", 1, 2048, 128)}
            seed = st.number_input("Seed (empty: random)", min_value=0, value=None, step=1)
            if seed is not None:
                sampling["seed"] = int(seed)
        if st.button("New conversation", icon=":material/add:", width="stretch"):
            st.session_state.update(conversation_id=None, branch_choices={})
        current = st.session_state.get("conversation_id")
        if current and st.button("Delete this conversation", icon=":material/delete:", width="stretch"):
            try:
                api().delete_conversation(current)
                st.session_state.update(conversation_id=None, branch_choices={})
            except ApiError as e:
                show_api_error(e)
        conversation_list()  # search box and the list; rename and export below the page's load
    return model, sampling, tools


st.title("Chat")
show_flash()
if login_required() and not role():
    st.warning("Sign in to chat: use the Account page in the sidebar.")
    st.stop()
models = call(api().model_cards)
if models is None:  # the reason is already on screen
    st.stop()
if not models:
    st.info("No model is ready yet: the server may still be loading it. Start one with `flywheel serve`.")
    st.stop()
model, sampling, tools = sidebar(picker_labels(models))  # name · version · status
settle_stopped_answer()  # after Stop: the partial answer is stored before the page reads it
conversation_id = st.session_state.get("conversation_id")
conversation = call(api().conversation, conversation_id) if conversation_id else None
if conversation_id and conversation is None:  # deleted or not ours: the next message starts a new one
    st.session_state["conversation_id"] = conversation_id = None
if conversation:
    with st.sidebar:
        conversation_tools(conversation)
messages = (conversation or {}).get("messages", [])
path = active_path(messages, st.session_state.get("branch_choices", {}))
# Bubbles keep their places across the rerun after an answer: the hint has a slot of its own, and
# the message being regenerated or edited (and what follows it) is not drawn, so the streamed
# bubble sits where the stored one will. Else the new answer shows twice while the page redraws.
hint = st.empty()
if not path:
    hint.caption("Ask anything to start a conversation. Your conversations are listed in the sidebar.")
pending_id = (st.session_state.get("pending") or {}).get("message_id")
shown = next((i for i, m in enumerate(path) if m["id"] == pending_id), len(path))
for message in path[:shown]:
    with st.chat_message(message["role"]):
        links = message["role"] == "assistant" and answer_links()  # only if the operator asked
        render_message(message, links=links)  # answers: safe markdown, code, tool calls
        sibling_switcher(message, messages)
        if message["role"] == "assistant":
            answer_feedback(message)
        elif message["role"] == "user":
            edit_box(message)
if st.session_state.get("pending"):
    if run_pending(path, messages, model, sampling, tools):
        st.rerun()
if prompt := st.chat_input("Message the model"):
    with st.chat_message("user"):
        st.markdown(neutralize(prompt))
    turns = [{"role": m["role"], "content": m["content"]} for m in path] + [{"role": "user", "content": prompt}]
    extra = {"conversation_id": conversation_id} | ({"parent_message_id": path[-1]["id"]} if path else {})
    if answer(turns, extra, model, sampling, tools):
        st.rerun()
