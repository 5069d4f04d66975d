"""Which branch of a stored conversation is on screen.

Messages form a tree through `parent_id`: a regenerated answer is a sibling of the old one, an
edited user message is a sibling of the original. `choices` maps a parent id (ROOT for top-level
messages) to the child the user picked; without a choice the newest child is shown. Pure functions,
no Streamlit.
"""
from __future__ import annotations

ROOT = "__root__"
# A tool result sits between the answer that called the tool and the answer that read the
# result: hiding it would cut that branch in two.
VISIBLE_ROLES = ("user", "assistant", "tool")


def children_by_parent(messages: list[dict]) -> dict[str, list[dict]]:
    """parent id -> visible children ordered oldest first (system messages are skipped)."""
    tree: dict[str, list[dict]] = {}
    visible = {m["id"] for m in messages if m.get("role") in VISIBLE_ROLES}
    for message in messages:
        if message.get("role") not in VISIBLE_ROLES:
            continue
        parent = message.get("parent_id")
        tree.setdefault(parent if parent in visible else ROOT, []).append(message)
    for siblings in tree.values():
        siblings.sort(key=lambda m: str(m.get("created_at") or ""))  # stable: API order breaks ties
    return tree


def active_path(messages: list[dict], choices: dict[str, str]) -> list[dict]:
    """The messages on the chosen branch, root to leaf."""
    tree = children_by_parent(messages)
    path: list[dict] = []
    parent = ROOT
    while parent in tree:
        siblings = tree[parent]
        chosen = next((m for m in siblings if m["id"] == choices.get(parent)), siblings[-1])
        path.append(chosen)
        parent = chosen["id"]
    return path


def sibling_position(messages: list[dict], message: dict) -> tuple[list[dict], int]:
    """All siblings of `message` (itself included) and its index among them."""
    tree = children_by_parent(messages)
    for siblings in tree.values():
        ids = [m["id"] for m in siblings]
        if message["id"] in ids:
            return siblings, ids.index(message["id"])
    return [message], 0


def parent_key(message: dict, messages: list[dict]) -> str:
    """The `choices` key under which `message` and its siblings sit."""
    ids = {m["id"] for m in messages if m.get("role") in VISIBLE_ROLES}
    parent = message.get("parent_id")
    return parent if parent in ids else ROOT
