"""Chat page: streaming answers, conversations kept by the API, regenerate, edit, feedback."""
import streamlit as st

from app.ui.chat_widgets import answer_feedback, edit_box, sibling_switcher
from app.ui.client import ApiError, ChatIds
from app.ui.conversation_tree import ROOT, active_path, parent_key
from app.ui.safe_text import neutralize, neutralize_stream
from app.ui.session import api, call, login_required, role, show_api_error, show_flash


def sidebar(models: list[str]) -> tuple[str, dict]:
    """Model picker, sampling controls and the conversation list."""
    with st.sidebar:
        model = st.selectbox("Model version", models)
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
            if call(api().delete_conversation, current) is None:
                st.session_state.update(conversation_id=None, branch_choices={})
        for conv in call(api().conversations) or []:
            label = neutralize(conv.get("title") or "Untitled")
            if st.button(label, key=f"conv_{conv['id']}", width="stretch",
                         type="primary" if conv["id"] == st.session_state.get("conversation_id") else "secondary"):
                st.session_state.update(conversation_id=conv["id"], branch_choices={})
    return model, sampling


def stream_answer(history: list[dict], extra: dict, model: str, sampling: dict) -> str | None:
    """Stream one answer into an assistant bubble; returns the stored message id."""
    ids = ChatIds()
    with st.chat_message("assistant"):
        try:
            st.write_stream(neutralize_stream(api().stream_chat(history, ids, model=model,
                                                                sampling=sampling, extra=extra)))
        except ApiError as e:
            show_api_error(e)
            return None
    st.session_state["conversation_id"] = ids.conversation_id or st.session_state.get("conversation_id")
    return ids.message_id


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


st.title("Chat")
show_flash()
if login_required() and not role():
    st.warning("Sign in to chat: use the Account page in the sidebar.")
    st.stop()
models = call(api().models)
if models is None:  # the reason is already on screen
    st.stop()
if not models:
    st.info("No model is ready yet: the server may still be loading it. Start one with `flywheel serve`.")
    st.stop()
model, sampling = sidebar(models)
conversation_id = st.session_state.get("conversation_id")
conversation = call(api().conversation, conversation_id) if conversation_id else None
if conversation_id and conversation is None:  # deleted or not ours: the next message starts a new one
    st.session_state["conversation_id"] = conversation_id = None
messages = (conversation or {}).get("messages", [])
path = active_path(messages, st.session_state.get("branch_choices", {}))
if not path:
    st.caption("Ask anything to start a conversation. Your conversations are listed in the sidebar.")
for message in path:
    with st.chat_message(message["role"]):
        st.markdown(neutralize(message["content"]))
        sibling_switcher(message, messages)
        if message["role"] == "assistant":
            answer_feedback(message)
        else:
            edit_box(message)
if st.session_state.get("pending"):
    if run_pending(path, messages, model, sampling):
        st.rerun()
if prompt := st.chat_input("Message the model"):
    with st.chat_message("user"):
        st.markdown(neutralize(prompt))
    turns = [{"role": m["role"], "content": m["content"]} for m in path] + [{"role": "user", "content": prompt}]
    extra = {"conversation_id": conversation_id} | ({"parent_message_id": path[-1]["id"]} if path else {})
    if stream_answer(turns, extra, model, sampling):
        st.rerun()
