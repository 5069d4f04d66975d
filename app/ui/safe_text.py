"""Neutralize untrusted text (prompts, answers, titles, names) before it reaches st.markdown.

Every ASCII punctuation character gets a CommonMark backslash escape, so HTML tags, links, images,
emphasis, headings and `$...$` math all show as the literal characters typed. Line breaks are kept
as hard breaks. The UI never passes `unsafe_allow_html`.

Escapes do not stop GitHub-flavoured autolinks: the renderer turns bare `http://…`, `www.…` and
`name@host.tld` into links after escapes are resolved. A WORD JOINER (U+2060, invisible, no width)
after the scheme's colon, after `www` and after `@` breaks the pattern, so those stay text. Model
answers may keep their links when the operator asks for it (`flywheel ui --answer-links`).

Bidi embeddings, overrides and isolates are written as `[U+XXXX]` everywhere (an unclosed override
reverses the rest of its line). Names (usernames, tags, model and version names) go through
`label`, which also reveals zero-width characters and bidi marks, so `ad\\u200bmin` cannot pass
for "admin".
"""
from __future__ import annotations

import re
import string
from collections.abc import Iterable, Iterator

from app.core.names import reveal_hidden, reveal_overrides

_ESCAPES = str.maketrans({c: "\\" + c for c in string.punctuation} | {"\n": "  \n"})
_JOINER = "\u2060"
# Where an autolink could start, as zero-width positions: between a scheme's ":" and "//", between
# "www" and ".", after "@" (any case). Each needs at most two characters after the position.
_AUTOLINK_START = re.compile(r"(?i)(?<=[a-z]:)(?=//)|(?<=www)(?=\.)|(?<=@)")
_LOOKBEHIND = 3


def _unlink(text: str, start: int = 0, stop: int | None = None) -> str:
    """text[start:stop] with a joiner before every position in [start, stop) where an autolink
    could begin (positions are judged on the whole of `text`)."""
    stop = len(text) if stop is None else stop
    window = max(0, start - _LOOKBEHIND)
    parts, last = [], start
    for match in _AUTOLINK_START.finditer(text, window, min(len(text), stop + 2)):
        if start <= match.start() < stop:
            parts += [text[last:match.start()], _JOINER]
            last = match.start()
    return "".join(parts) + text[last:stop]


def _escape(text: str) -> str:
    return reveal_overrides(text).translate(_ESCAPES)


def neutralize(text: str, links: bool = False) -> str:
    """Markdown that renders as exactly `text`, with no link in it unless `links` is set."""
    return _escape(text if links else _unlink(text))


def label(text: object) -> str:
    """A name or tag as markdown: neutralized, its invisible and bidi characters made visible."""
    return neutralize(reveal_hidden(str(text)))


def neutralize_stream(chunks: Iterable[str], links: bool = False) -> Iterator[str]:
    """Escape a token stream. Escaping is per character, but an autolink can span chunks (`http:`
    then `//x`), so the last character of the text so far is held back until the next chunk
    shows what follows it."""
    text, sent = "", 0
    for chunk in chunks:
        text += chunk
        if (cut := len(text) - 1) > sent:
            yield _escape(text[sent:cut] if links else _unlink(text, sent, cut))
            sent = cut
    if len(text) > sent:
        yield _escape(text[sent:] if links else _unlink(text, sent))
