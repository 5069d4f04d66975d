"""Request and response shapes of `/v1/annotation/datasets` (the Argilla-style annotation console).

Questions and answers arrive as plain JSON and are checked by `app.annotation.questions`, whose
errors name the field (`param: "questions.1.scale"`, `"values.quality"`)."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

QUESTION_DOC = ('{"name": "quality", "title": "How good is the answer?", "kind": "rating"|"label"|'
                '"multi_label"|"ranking"|"text", "required": true, "scale": 5 (rating), '
                '"options": ["a", "b"] (label kinds), "description": ""}')


class DatasetCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
                      description="1-64 letters, digits, '.', '_' or '-'.")
    guidelines: str = Field(default="", max_length=50_000, description="Markdown, shown as text.")
    min_submitted: int = Field(default=1, ge=1, le=20,
                               description="Annotators each record goes to (overlap for agreement).")
    questions: list[dict[str, Any]] = Field(description=f"1 to 20 questions. {QUESTION_DOC}")


class QuestionPublic(BaseModel):
    name: str
    title: str
    kind: str
    required: bool
    description: str = ""
    scale: int | None = None
    options: list[str] | None = None


class DatasetPublic(BaseModel):
    object: Literal["annotation.dataset"] = "annotation.dataset"
    id: str
    name: str
    guidelines: str
    min_submitted: int
    num_records: int
    questions: list[QuestionPublic]
    created_by: str | None
    created_at: datetime


class DatasetList(BaseModel):
    object: Literal["list"] = "list"
    data: list[DatasetPublic]


class CandidateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=64)
    text: str = Field(max_length=100_000)


class RecordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: str = Field(max_length=100_000)
    answer: str = Field(default="", max_length=100_000)
    candidates: list[CandidateIn] = Field(default_factory=list, max_length=20)
    metadata: dict[str, Any] = Field(default_factory=dict)


class ChatSource(BaseModel):
    """Which chat answers become records (the review queue's filters)."""
    model_config = ConfigDict(extra="forbid")
    kind: Literal["feedback", "messages"] = Field(
        description="'feedback': answers with feedback; 'messages': every assistant answer.")
    thumbs: Literal["up", "down"] | None = None
    rating: int | None = Field(default=None, ge=1, le=5)
    tag: str | None = None
    model_version: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = Field(default=200, ge=1, le=1000)


class RecordsAdd(BaseModel):
    model_config = ConfigDict(extra="forbid")
    records: list[RecordIn] | None = Field(default=None, max_length=10_000,
                                           description="Imported records.")
    from_chats: ChatSource | None = Field(default=None, description="Or: records from the chats.")


class RecordsAdded(BaseModel):
    object: Literal["annotation.records.added"] = "annotation.records.added"
    added: int
    skipped: int = Field(description="Already in the dataset, or without the candidates a "
                         "required ranking question needs.")


class RecordPublic(BaseModel):
    object: Literal["annotation.record"] = "annotation.record"
    id: str
    position: int
    prompt: str
    answer: str
    candidates: list[CandidateIn]
    metadata: dict[str, Any]


class NextRecord(BaseModel):
    object: Literal["annotation.next"] = "annotation.next"
    record: RecordPublic | None = Field(description="null: nothing left for you in this dataset.")


class ResponseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["submitted", "discarded"] = Field(
        default="submitted", description="'discarded' skips the record (no values needed).")
    values: dict[str, Any] = Field(default_factory=dict, description="question name -> answer")


class ResponsePublic(BaseModel):
    object: Literal["annotation.response"] = "annotation.response"
    id: str
    record_id: str
    annotator: str
    status: str
    values: dict[str, Any]
    updated_at: datetime


class AnnotatorProgressPublic(BaseModel):
    annotator: str
    submitted: int
    discarded: int
    pending: int
    answered_by_question: dict[str, int]


class ProgressPublic(BaseModel):
    object: Literal["annotation.progress"] = "annotation.progress"
    num_records: int
    completed: int
    pending: int
    annotators: list[AnnotatorProgressPublic]


class QuestionAgreementPublic(BaseModel):
    question: str
    kind: str
    num_annotators: int
    items_with_overlap: int
    percent_agreement: float | None
    cohens_kappa: float | None = Field(description="Only when exactly two annotators overlap.")
    alpha: dict[str, float | None] = Field(description="Krippendorff's alpha by level of measurement.")


class AgreementPublic(BaseModel):
    object: Literal["list"] = "list"
    data: list[QuestionAgreementPublic]
