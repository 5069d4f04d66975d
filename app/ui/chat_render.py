"""Draws one stored chat message: prose as safe markdown, code as `st.code`, tool calls as a
compact "called f(...)" line with the arguments, tool results and JSON answers pretty-printed.

User messages are drawn exactly as typed (`neutralize`); only answers get markdown (see
`app.ui.answer_blocks` for what is kept and what is escaped). A stopped answer says so.
"""
from __future__ import annotations

import streamlit as st

from app.core.names import reveal_hidden
from app.ui.answer_blocks import BlockKind, pretty_json, safe_markdown, split_blocks
from app.ui.safe_text import neutralize

ABORTED = "abort"  # the finish_reason the server stores for an answer stopped mid-stream
STOPPED_NOTE = "stopped: the answer was cut off here"


def render_message(message: dict, links: bool = False) -> None:
    """The body of `message` inside its chat bubble (links in answers: the operator's choice)."""
    role, content = message.get("role"), message.get("content") or ""
    if role == "assistant":
        render_answer(content, links)
        if message.get("finish_reason") == ABORTED:
            st.caption(STOPPED_NOTE)
    elif role == "tool":
        render_tool_result(content)
    else:
        st.markdown(neutralize(content))


def render_answer(text: str, links: bool = False) -> None:
    for block in split_blocks(text):
        if block.kind is BlockKind.PROSE:
            st.markdown(safe_markdown(block.text, links=links))
        elif block.kind is BlockKind.TOOL_CALL:
            render_tool_call(block.name, block.text)
        else:  # CODE and JSON: st.code shows text as text, with the language's highlighting
            st.code(block.text, language=block.language)


def render_tool_call(name: str | None, arguments: str) -> None:
    # "called f({...})" in one code line: the name and arguments are the model's text
    st.caption("tool call")
    st.code(f"{reveal_hidden(name or '')}({arguments})", language="python", wrap_lines=True)


def render_tool_result(text: str) -> None:
    st.caption("tool result")
    pretty = pretty_json(text)
    st.code(text if pretty is None else pretty, language="json" if pretty is not None else None)
