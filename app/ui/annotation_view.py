"""Pure helpers of the annotation page (no Streamlit): the schema builder's table rows -> question
dicts for the API, a record's widget values -> the response's values, and the progress and agreement
tables."""
from __future__ import annotations

import math
from typing import Any

KINDS = ("rating", "label", "multi_label", "ranking", "text")
EXAMPLE_QUESTIONS = [
    {"name": "quality", "title": "How good is the answer?", "kind": "rating", "scale": 5, "options": "",
     "required": True},
    {"name": "topic", "title": "Topic", "kind": "label", "scale": None, "options": "math, story, other",
     "required": True},
    {"name": "rewrite", "title": "Better answer (optional)", "kind": "text", "scale": None, "options": "",
     "required": False},
]


def questions_from_rows(rows: list[dict]) -> list[dict]:
    """The builder table (one row per question; options comma-separated) as the API's questions.
    Blank rows are dropped; everything else goes to the server, which names what is wrong."""
    questions = []
    for row in rows:
        name = str(row.get("name") or "").strip()
        if not name:
            continue
        question: dict[str, Any] = {"name": name, "kind": row.get("kind") or "rating",
                                    "title": str(row.get("title") or "").strip() or name,
                                    "required": bool(row.get("required", True))}
        if question["kind"] == "rating":
            scale = row.get("scale")
            # an empty cell of the builder table is None, "" or NaN: the default scale then
            question["scale"] = 5 if scale in (None, "") or math.isnan(float(scale)) else int(scale)
        if question["kind"] in ("label", "multi_label"):
            question["options"] = [o.strip() for o in str(row.get("options") or "").split(",") if o.strip()]
        questions.append(question)
    return questions


def response_values(questions: list[dict], widget_values: dict[str, Any], record: dict) -> dict[str, Any]:
    """What the widgets hold, as the API's values: unanswered questions are left out (the server
    says which required one is missing); an unchanged rewrite is no rewrite."""
    values: dict[str, Any] = {}
    for question in questions:
        value = widget_values.get(question["name"])
        if question["kind"] == "text":
            value = (value or "").strip()
            if not value or value == record.get("answer", "").strip():
                continue
        if question["kind"] == "multi_label" and value is None:
            value = []
        if question["kind"] == "ranking" and not value:
            continue
        if value is None:
            continue
        values[question["name"]] = list(value) if isinstance(value, (list, tuple)) else value
    return values


def progress_rows(progress: dict, questions: list[dict]) -> list[dict]:
    """One row per annotator: submitted, skipped, pending, and answers per question."""
    return [{"annotator": a["annotator"], "submitted": a["submitted"], "skipped": a["discarded"],
             "pending": a["pending"],
             **{q["name"]: a["answered_by_question"].get(q["name"], 0) for q in questions}}
            for a in progress.get("annotators", [])]


def _number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def agreement_rows(agreement: list[dict]) -> list[dict]:
    """One row per question: annotators, overlap, percent agreement, Cohen's kappa, alpha."""
    return [{"question": a["question"], "kind": a["kind"], "annotators": a["num_annotators"],
             "records with overlap": a["items_with_overlap"],
             "agreement %": _number(a["percent_agreement"], 1), "Cohen's kappa": _number(a["cohens_kappa"]),
             "Krippendorff's alpha": ", ".join(f"{level} {_number(v)}" for level, v in a["alpha"].items())
             or "n/a (free text)"}
            for a in agreement]
