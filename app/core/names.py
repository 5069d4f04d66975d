"""Names people choose (usernames, tags, model and version names): the characters that make one
name look like another, and the checks a new username passes.

Invisible characters (zero-width spaces and joiners, the byte-order mark, the word joiner) and
bidirectional controls (embeddings, overrides, isolates, marks) are how `ad\\u200bmin` shows as
"admin" and an override turns "evil" into "live". Names never need them: a username containing
one is refused, and any name shown to a person has them made visible (`reveal_hidden`).

Confusables are caught with a skeleton, the idea of Unicode TS #39 in small: NFKC, casefold,
then a short map of the Latin look-alikes people actually meet (Cyrillic and Greek letters,
digits that pass for letters). Two usernames with one skeleton are one name to a reader.
This module knows nothing about storage; `app.store.crud_users` asks it before creating a user.
"""
from __future__ import annotations

import unicodedata

# Embeddings, overrides and isolates reorder what follows them; no text needs them to be read.
BIDI_OVERRIDES = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
BIDI_CONTROLS = BIDI_OVERRIDES | frozenset("\u200e\u200f\u061c")  # + marks: fine in prose
ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e")
HIDDEN_CHARS = BIDI_CONTROLS | ZERO_WIDTH

_REVEAL = {ord(c): f"[U+{ord(c):04X}]" for c in HIDDEN_CHARS}
_REVEAL_OVERRIDES = {ord(c): f"[U+{ord(c):04X}]" for c in BIDI_OVERRIDES}

# Look-alikes of Latin letters; keys are what NFKC + casefold leaves (lower case).
_CONFUSABLES = str.maketrans({
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i", "ј": "j",
    "ѕ": "s", "һ": "h", "ԁ": "d", "ԛ": "q", "ԝ": "w", "к": "k", "м": "m", "т": "t", "в": "b",
    "н": "h", "ӏ": "l", "α": "a", "ο": "o", "ρ": "p", "ν": "v", "ι": "i", "κ": "k", "τ": "t",
    "υ": "u", "χ": "x", "ε": "e", "β": "b", "0": "o", "1": "l", "|": "l", "ı": "i", "ł": "l",
    "ø": "o",
})
_MULTI = (("rn", "m"), ("vv", "w"))

USERNAME_MAX_CHARS = 64


class UnusableName(ValueError):
    """A name that cannot be used; the message says why in one sentence."""


def reveal_hidden(text: str) -> str:
    """`text` with every invisible or bidi control character written as `[U+XXXX]`."""
    return text.translate(_REVEAL)


def reveal_overrides(text: str) -> str:
    """`text` with bidi embeddings, overrides and isolates written as `[U+XXXX]`; marks and
    zero-width joiners stay (right-to-left prose and emoji sequences use them)."""
    return text.translate(_REVEAL_OVERRIDES)


def has_hidden(text: str) -> bool:
    return any(c in HIDDEN_CHARS for c in text)


def skeleton(name: str) -> str:
    """What a reader sees in `name`: equal skeletons are names people confuse."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    folded = "".join(c for c in unicodedata.normalize("NFD", folded)
                     if not unicodedata.combining(c))  # é -> e
    folded = folded.translate(_CONFUSABLES)
    for pair, single in _MULTI:
        folded = folded.replace(pair, single)
    return folded


def normalize_username(raw: str) -> str:
    """The NFKC form of `raw`; UnusableName when it holds invisible, control or space characters."""
    name = unicodedata.normalize("NFKC", raw)
    if has_hidden(name):
        hidden = next(c for c in name if c in HIDDEN_CHARS)
        raise UnusableName(f"username contains the invisible character U+{ord(hidden):04X}")
    if not name or len(name) > USERNAME_MAX_CHARS:
        raise UnusableName(f"username must be 1 to {USERNAME_MAX_CHARS} characters")
    for c in name:
        if c.isspace() or unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            raise UnusableName(f"username contains the control or space character U+{ord(c):04X}")
    return name


def confusable_with(name: str, existing: list[str]) -> str | None:
    """The first of `existing` that reads like `name` (same skeleton), or None."""
    target = skeleton(name)
    return next((other for other in existing if skeleton(other) == target), None)
