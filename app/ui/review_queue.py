"""Review queue items (one per feedback entry, as the API lists them) grouped into one card per
answer, newest feedback first. Pure functions, no Streamlit."""
from __future__ import annotations

FEEDBACK_FIELDS = ("feedback_id", "thumbs", "rating", "tags", "comment", "correction", "signal",
                   "created_at")


def group_by_answer(items: list[dict]) -> list[dict]:
    """[{message_id, prompt, answer, model_version, labels, feedback: [{thumbs, ...}, ...]}] in the
    order each answer first appears (the API sorts newest feedback first)."""
    cards: dict[str, dict] = {}
    for item in items:
        card = cards.setdefault(item["message_id"], {
            "message_id": item["message_id"], "conversation_id": item.get("conversation_id"),
            "prompt": item.get("prompt") or "", "answer": item.get("answer") or "",
            "model_version": item.get("model_version"), "labels": item.get("labels", []), "feedback": []})
        card["feedback"].append({name: item.get(name) for name in FEEDBACK_FIELDS})
    return list(cards.values())


def latest_correction(card: dict) -> str | None:
    return next((f["correction"] for f in card["feedback"] if f.get("correction")), None)


def feedback_summary(entry: dict) -> str:
    """'thumbs down · 2/5 stars · tags: a, b · 2026-11-28T10:00:00' (plain text)."""
    parts = [f"thumbs {entry['thumbs']}"] if entry.get("thumbs") else []
    if entry.get("signal"):
        parts.append(f"{entry['signal']} by its user")
    if entry.get("rating"):
        parts.append(f"{entry['rating']}/5 stars")
    if entry.get("tags"):
        parts.append("tags: " + ", ".join(entry["tags"]))
    parts.append(str(entry.get("created_at") or "")[:19])
    return " · ".join(parts)
