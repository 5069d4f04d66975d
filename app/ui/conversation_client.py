"""The conversation calls of the chat sidebar: search, rename, export (on top of `ApiClient`,
which raises `ApiError` with a readable sentence for every failure). No Streamlit here."""
from __future__ import annotations

from urllib.parse import quote

from app.ui.client import ApiClient

EXPORT_FORMATS = {"md": "text/markdown", "json": "application/json"}  # format -> download mime


def search_conversations(client: ApiClient, query: str) -> list[dict]:
    """The user's conversations whose title or text contains `query` (all when it is blank)."""
    params = {"q": query.strip()} if query.strip() else {}
    return client.request("GET", "/v1/conversations", params=params).get("data", [])


def rename_conversation(client: ApiClient, conversation_id: str, title: str) -> dict:
    return client.request("PATCH", f"/v1/conversations/{quote(conversation_id, safe='')}",
                          json={"title": title})


def export_conversation(client: ApiClient, conversation_id: str, fmt: str) -> str:
    """The file's text: `md` (the newest thread) or `json` (every message of the tree)."""
    assert fmt in EXPORT_FORMATS, f"unknown export format {fmt!r}"
    return client.text(f"/v1/conversations/{quote(conversation_id, safe='')}/export?format={fmt}")
