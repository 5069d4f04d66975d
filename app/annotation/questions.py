"""The label schema of an annotation dataset: typed questions, parsed from JSON and checked, and the
check of one annotator's answers against them.

Question kinds (what Argilla users know): a rating scale 1..N, one label of a set, several labels
of a set, a ranking of the record's candidate answers, and a free-text rewrite. Errors are
`AnnotationInputError` with `param` naming the offending field as the API reports it
("questions.2.options", "values.tone"). This module knows nothing about HTTP or the database.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")  # also a column name in the exports
MAX_QUESTIONS = 20
MAX_OPTIONS = 50
MAX_SCALE = 10  # a 1..10 rating at most: number keys select it
MAX_TEXT_CHARS = 100_000


class AnnotationInputError(ValueError):
    """Bad schema or answer; `param` is the field path the API reports."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


class QuestionKind(str, Enum):
    RATING = "rating"  # an integer 1..scale
    LABEL = "label"  # exactly one of `options`
    MULTI_LABEL = "multi_label"  # a subset of `options` (may be empty)
    RANKING = "ranking"  # the record's candidate ids, best first, each once
    TEXT = "text"  # a free-text rewrite of the answer


@dataclass(frozen=True, slots=True)
class Question:
    name: str  # key in a response's values and prefix of the export columns
    title: str  # what the annotator reads
    kind: QuestionKind
    required: bool = True  # a submitted response must answer it (a skip answers nothing)
    scale: int | None = None  # RATING: the highest value
    options: tuple[str, ...] = ()  # LABEL / MULTI_LABEL: the label set, in display order
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name, "title": self.title, "kind": self.kind.value,
                                "required": self.required, "description": self.description}
        if self.kind is QuestionKind.RATING:
            body["scale"] = self.scale
        if self.kind in (QuestionKind.LABEL, QuestionKind.MULTI_LABEL):
            body["options"] = list(self.options)
        return body


@dataclass(frozen=True, slots=True)
class Candidate:
    """One answer a RANKING question orders (the record's answer and its sibling answers)."""
    id: str
    text: str


@dataclass(frozen=True, slots=True)
class RecordView:
    """What validation needs to know of the record being answered."""
    candidate_ids: tuple[str, ...] = field(default_factory=tuple)


def parse_questions(raw: Any) -> list[Question]:
    """Questions from their JSON form; raises AnnotationInputError naming the bad field."""
    if not isinstance(raw, list) or not raw:
        raise AnnotationInputError("A dataset needs a non-empty list of questions.", "questions")
    if len(raw) > MAX_QUESTIONS:
        raise AnnotationInputError(f"At most {MAX_QUESTIONS} questions.", "questions")
    questions = [_parse_question(item, f"questions.{i}") for i, item in enumerate(raw)]
    seen: set[str] = set()
    for i, question in enumerate(questions):
        if question.name in seen:
            raise AnnotationInputError(f"Question name {question.name!r} is used twice.",
                                       f"questions.{i}.name")
        seen.add(question.name)
    return questions


def _parse_question(item: Any, where: str) -> Question:
    if not isinstance(item, dict):
        raise AnnotationInputError("Each question is an object.", where)
    unknown = set(item) - {"name", "title", "kind", "required", "scale", "options", "description"}
    if unknown:
        first = min(unknown)
        raise AnnotationInputError(f"Unknown question field {first!r}.", f"{where}.{first}")
    name = item.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise AnnotationInputError("A question name is 1-40 lowercase letters, digits or '_', "
                                   "starting with a letter.", f"{where}.name")
    try:
        kind = QuestionKind(item.get("kind"))
    except ValueError as e:
        kinds = ", ".join(k.value for k in QuestionKind)
        raise AnnotationInputError(f"Unknown question kind; one of: {kinds}.", f"{where}.kind") from e
    title, description = item.get("title", name), item.get("description", "")
    required = item.get("required", True)
    if not isinstance(title, str) or not isinstance(description, str) or not isinstance(required, bool):
        raise AnnotationInputError("title and description are strings, required a boolean.", where)
    return Question(name=name, title=title.strip() or name, kind=kind, required=required,
                    scale=_scale(kind, item.get("scale"), where),
                    options=_options(kind, item.get("options"), where), description=description)


def _scale(kind: QuestionKind, scale: Any, where: str) -> int | None:
    if kind is not QuestionKind.RATING:
        if scale is not None:
            raise AnnotationInputError("Only a rating question has a scale.", f"{where}.scale")
        return None
    if isinstance(scale, bool) or not isinstance(scale, int) or not 2 <= scale <= MAX_SCALE:
        raise AnnotationInputError(f"A rating scale is an integer from 2 to {MAX_SCALE}.",
                                   f"{where}.scale")
    return scale


def _options(kind: QuestionKind, options: Any, where: str) -> tuple[str, ...]:
    if kind not in (QuestionKind.LABEL, QuestionKind.MULTI_LABEL):
        if options is not None:
            raise AnnotationInputError("Only label questions have options.", f"{where}.options")
        return ()
    if (not isinstance(options, list) or not 2 <= len(options) <= MAX_OPTIONS
            or not all(isinstance(o, str) and o.strip() for o in options)):
        raise AnnotationInputError(f"Label options are 2 to {MAX_OPTIONS} non-empty strings.",
                                   f"{where}.options")
    cleaned = tuple(o.strip() for o in options)
    if len(set(cleaned)) != len(cleaned):
        raise AnnotationInputError("Label options are distinct.", f"{where}.options")
    return cleaned


def validate_answers(questions: list[Question], values: Any, record: RecordView) -> dict[str, Any]:
    """A submitted response's values, checked: every required question answered, nothing unknown.
    Returns the values in canonical form (question order, options as given)."""
    if not isinstance(values, dict):
        raise AnnotationInputError("values is an object: question name -> answer.", "values")
    by_name = {q.name: q for q in questions}
    for name in values:
        if name not in by_name:
            raise AnnotationInputError(f"No question named {name!r} in this dataset.", f"values.{name}")
    checked: dict[str, Any] = {}
    for question in questions:
        value = values.get(question.name)
        if value is None:
            if question.required:
                raise AnnotationInputError(f"Question {question.name!r} needs an answer.",
                                           f"values.{question.name}")
            continue
        checked[question.name] = _check_value(question, value, record)
    return checked


def _check_value(question: Question, value: Any, record: RecordView) -> Any:
    param = f"values.{question.name}"
    kind = question.kind
    if kind is QuestionKind.RATING:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= question.scale:
            raise AnnotationInputError(f"A rating from 1 to {question.scale}.", param)
        return value
    if kind is QuestionKind.LABEL:
        if value not in question.options:
            raise AnnotationInputError(f"One of: {', '.join(question.options)}.", param)
        return value
    if kind is QuestionKind.MULTI_LABEL:
        if not isinstance(value, list) or any(v not in question.options for v in value) \
                or len(set(value)) != len(value):
            raise AnnotationInputError(f"A list of distinct labels from: {', '.join(question.options)}.",
                                       param)
        return [o for o in question.options if o in value]
    if kind is QuestionKind.RANKING:
        if (not record.candidate_ids or not isinstance(value, list)
                or not all(isinstance(v, str) for v in value)
                or sorted(value) != sorted(record.candidate_ids)):
            raise AnnotationInputError("A ranking lists every candidate id of the record once, "
                                       "best first.", param)
        return list(value)
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT_CHARS:
        raise AnnotationInputError(f"A non-empty text of at most {MAX_TEXT_CHARS} characters.", param)
    return value
