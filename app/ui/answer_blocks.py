"""A model answer cut into what the chat draws differently: prose, fenced code, tool calls, JSON.

Pure functions, no Streamlit (`app.ui.chat_render` draws the blocks). Prose becomes *safe
markdown*: headings, list markers, block quotes, `inline code`, **bold** and *italic* keep their
meaning, and every other punctuation character is escaped as `safe_text.neutralize` does, so a
link, an image, an HTML tag or math in an answer still shows as the characters the model wrote
(no autolinks unless the operator enabled answer links). Code goes to `st.code`, which shows
text as text.

An unclosed fence (a streamed or cut-off answer) runs to the end of the text. A `<tool_call>`
block (the Hermes format the store keeps an assistant's calls in) whose body is a call object
becomes a tool-call block, also when the answer ends before its close tag; anything else stays
prose.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import Enum

from app.core.names import reveal_overrides
from app.ui.safe_text import neutralize


class BlockKind(str, Enum):
    PROSE = "prose"
    CODE = "code"
    TOOL_CALL = "tool_call"
    JSON = "json"


@dataclass(frozen=True, slots=True)
class Block:
    kind: BlockKind
    text: str  # prose as written, the code, a call's arguments (one line) or the JSON indented
    language: str | None = None  # a fence's info word ("python"), "json" for JSON and calls
    name: str | None = None  # the called function's name (TOOL_CALL only)


# The Hermes markers (`app.tool_calls.hermes`), written out: importing app.tool_calls loads torch,
# seconds the UI's first paint would wait for.
OPEN, CLOSE = "<tool_call>", "</tool_call>"
_FENCE_OPEN = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\s]*)[^`]*$")
# the close tag may be missing at the end: a call cut off by max_tokens after its object
_TOOL_CALL = re.compile(re.escape(OPEN) + r"\s*(.*?)\s*(?:" + re.escape(CLOSE) + r"|\Z)", re.DOTALL)


def split_blocks(text: str) -> list[Block]:
    """The answer's blocks in order; a whole answer that is a JSON object or array is one block."""
    if (pretty := pretty_json(text)) is not None:
        return [Block(BlockKind.JSON, pretty, language="json")]
    blocks: list[Block] = []
    prose: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        opened = _FENCE_OPEN.match(lines[i])
        if opened is None:
            prose.append(lines[i])
            i += 1
            continue
        fence = opened["fence"]
        end = next((j for j in range(i + 1, len(lines)) if _closes(lines[j], fence)), len(lines))
        blocks += _prose_blocks("\n".join(prose))
        prose = []
        blocks.append(Block(BlockKind.CODE, "\n".join(lines[i + 1:end]),
                            language=opened["info"].lower() or None))
        i = end + 1
    return blocks + _prose_blocks("\n".join(prose))


def pretty_json(text: str) -> str | None:
    """`text` indented when it is one JSON object or array, else None."""
    stripped = text.strip()
    if not stripped.startswith(("{", "[")):
        return None
    try:
        return json.dumps(json.loads(stripped), indent=2, ensure_ascii=False)
    except ValueError:
        return None


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return (len(line) - len(line.lstrip(" ")) <= 3 and len(stripped) >= len(fence)
            and set(stripped) == {fence[0]})


def _prose_blocks(text: str) -> list[Block]:
    """Prose with its tool calls cut out as blocks of their own."""
    blocks, last = [], 0
    for match in _TOOL_CALL.finditer(text):
        call = _call(_less_cut_close(match[1]))
        if call is None:
            continue
        blocks.append(Block(BlockKind.PROSE, text[last:match.start()]))
        blocks.append(call)
        last = match.end()
    blocks.append(Block(BlockKind.PROSE, text[last:]))
    return [b for b in blocks if b.kind is not BlockKind.PROSE or b.text.strip()]


def _less_cut_close(body: str) -> str:
    """A call's body less a start of the close tag it ends in (cut off while writing it)."""
    for size in range(len(CLOSE) - 1, 0, -1):
        if body.endswith(CLOSE[:size]):
            return body[:-size].rstrip()
    return body


def _call(body: str) -> Block | None:
    try:
        call = json.loads(body)
    except ValueError:
        return None
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        return None
    arguments = call.get("arguments", {})
    if isinstance(arguments, str):  # some models write the arguments as a JSON string
        arguments = json.loads(arguments) if pretty_json(arguments) is not None else arguments
    return Block(BlockKind.TOOL_CALL, json.dumps(arguments, ensure_ascii=False),
                 language="json", name=call["name"])


# -- safe markdown for prose ----------------------------------------------------------------------
# A line's block marker: heading, bullet, ordered item or quote (kept as markdown).
_LINE = re.compile(r"^(?P<indent>[ \t]*)(?P<marker>#{1,6}[ \t]|[-*+][ \t]|\d{1,9}[.)][ \t]|>[ \t]?)?"
                   r"(?P<rest>.*)$")
# Inline spans kept as markdown: `code`, **bold**, __bold__, *italic*, _italic_.
_INLINE = re.compile(r"`(?P<code>[^`\n]+)`"
                     r"|\*\*(?P<strong>[^*\n]+?)\*\*|__(?P<strong2>[^_\n]+?)__"
                     r"|(?<![\w*])\*(?P<em>[^*\s](?:[^*\n]*[^*\s])?)\*(?![\w*])"
                     r"|(?<![\w_])_(?P<em2>[^_\s](?:[^_\n]*[^_\s])?)_(?![\w_])")


def safe_markdown(text: str, links: bool = False) -> str:
    """Markdown for prose: block markers and emphasis/code spans kept, everything else escaped."""
    return "  \n".join(_safe_line(line, links) for line in text.split("\n"))


def _safe_line(line: str, links: bool) -> str:
    parts = _LINE.match(line)
    marker = (parts["marker"] or "").replace("\t", " ")
    # Indentation nests list items; elsewhere four spaces would open an indented code block.
    indent = parts["indent"].replace("\t", "    ") if marker else ""
    if marker.startswith(">") and not marker.endswith(" "):
        marker += " "
    return indent + marker + _safe_inline(parts["rest"], links)


def _safe_inline(text: str, links: bool) -> str:
    out, last = [], 0
    for match in _INLINE.finditer(text):
        out.append(neutralize(text[last:match.start()], links=links))
        if match["code"] is not None:  # a code span shows its content as typed (no links either)
            out.append("`" + reveal_overrides(match["code"]) + "`")
        else:
            inner = next(g for g in (match["strong"], match["strong2"], match["em"], match["em2"])
                         if g is not None)
            mark = "**" if match["strong"] is not None or match["strong2"] is not None else "*"
            out.append(mark + neutralize(inner, links=links) + mark)
        last = match.end()
    out.append(neutralize(text[last:], links=links))
    return "".join(out)
