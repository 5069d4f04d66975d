"""What the chat's model picker shows for each entry of GET /v1/models: name, version, status.

The public name routes to whichever version is in production (a share of conversations to the
canary), so its entry says which version that is now: "flywheel-demo · mv-base · production".
Each loaded version is listed under its id with its status: "mv-0002 · canary". A server without
a registry lists plain names. Streamlit-free, so it is tested directly.
"""
from __future__ import annotations


def picker_labels(cards: list[dict]) -> dict[str, str]:
    """{model id to send in requests: label}, in the API's order (the public name first)."""
    return {card["id"]: _label(card) for card in cards}


def _label(card: dict) -> str:
    version, status = card.get("version"), card.get("status")
    parts = [card["id"]]
    if version and version != card["id"]:  # the public name: the version behind it now
        parts.append(version)
    if status:
        parts.append(status)
    label = " · ".join(parts)
    if card.get("canary") and card["canary"] != version:
        label += f" (canary {card['canary']} on a share)"
    return label
