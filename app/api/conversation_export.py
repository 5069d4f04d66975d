"""A conversation as a file its owner downloads: Markdown to read, JSON to process.

JSON holds every message of the tree (regenerated answers and edited prompts included, each with
its `parent_id`), as GET /v1/conversations/{id} shows them. Markdown is for reading, so it holds
one thread: the newest branch, from the first message to the latest one, each message under a
heading naming its role; a stopped answer says so. Message text is written as the model or user
wrote it (a file, not a page: nothing here is rendered by the console).
"""
from __future__ import annotations

from enum import Enum

from app.api.schemas.store import ConversationDetail, MessagePublic

ABORTED = "abort"  # finish_reason of an answer stopped mid-stream
_ROLE_HEADINGS = {"system": "System", "user": "User", "assistant": "Assistant", "tool": "Tool result"}


class ExportFormat(str, Enum):
    MARKDOWN = "md"
    JSON = "json"

    @property
    def media_type(self) -> str:
        return "text/markdown; charset=utf-8" if self is ExportFormat.MARKDOWN else "application/json"


def export_filename(detail: ConversationDetail, fmt: ExportFormat) -> str:
    return f"{detail.id}.{fmt.value}"


def export_json(detail: ConversationDetail) -> str:
    return detail.model_dump_json(indent=2)


def export_markdown(detail: ConversationDetail) -> str:
    lines = [f"# {detail.title or 'Untitled conversation'}", "",
             f"Exported from Flywheel · conversation {detail.id} · model {detail.model or 'unknown'}", ""]
    for message in newest_thread(detail.messages):
        lines += [f"## {_ROLE_HEADINGS.get(message.role, message.role)}", "", message.content, ""]
        if message.role == "assistant":
            facts = [f"model version {message.model_version}" if message.model_version else "",
                     "stopped before the end" if message.finish_reason == ABORTED else ""]
            if facts := [f for f in facts if f]:
                lines += [f"*{' · '.join(facts)}*", ""]
    return "\n".join(lines)


def newest_thread(messages: list[MessagePublic]) -> list[MessagePublic]:
    """The latest message and its ancestors, root first (`messages` in the order they were
    written, as the store's `seq` and then the outbox give them)."""
    if not messages:
        return []
    by_id = {m.id: m for m in messages}
    thread, current = [], messages[-1]
    while current is not None and current not in thread:
        thread.append(current)
        current = by_id.get(current.parent_id) if current.parent_id else None
    return thread[::-1]
