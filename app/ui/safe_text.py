"""Neutralize untrusted text (user prompts, model answers, titles) before it reaches st.markdown.

Every ASCII punctuation character gets a CommonMark backslash escape, so HTML tags, links, images,
emphasis, headings and `$...$` math all show as the literal characters typed. Line breaks are kept
as hard breaks. The UI never passes `unsafe_allow_html`.
"""
from __future__ import annotations

import string
from collections.abc import Iterable, Iterator

_ESCAPES = str.maketrans({c: "\\" + c for c in string.punctuation} | {"\n": "  \n"})


def neutralize(text: str) -> str:
    """Markdown that renders as exactly `text`."""
    return text.translate(_ESCAPES)


def neutralize_stream(chunks: Iterable[str]) -> Iterator[str]:
    """Escape a token stream chunk by chunk (escaping is per character, so chunking is safe)."""
    for chunk in chunks:
        yield neutralize(chunk)
