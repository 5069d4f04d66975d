"""Tables of the annotation console: datasets (a label schema + guidelines), their records, and one
response per (record, annotator).

A dataset's questions are stored as JSON in the row (`app.annotation.questions` parses them): a
schema is read and written whole. A record copies the text it shows (prompt, answer, candidate
answers) so that deleting or editing a chat does not change what was labelled; `message_id` and
`author_id` remember where it came from (the author never gets it to label). A response is
"submitted" (values checked against the schema) or "discarded" (skipped: the record is not offered
to that annotator again and does not count towards its `min_submitted`).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.store.base import Base, utcnow

RESPONSE_STATUSES = ("submitted", "discarded")


class AnnotationDataset(Base):
    __tablename__ = "annotation_datasets"
    __table_args__ = (CheckConstraint("min_submitted >= 1", name="min_submitted_positive"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    guidelines: Mapped[str] = mapped_column(Text, default="")  # markdown, shown as text beside items
    questions: Mapped[list] = mapped_column(JSON)  # [Question.to_dict()]
    min_submitted: Mapped[int] = mapped_column(default=1)  # annotators per record before it is done
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AnnotationRecord(Base):
    __tablename__ = "annotation_records"
    __table_args__ = (
        UniqueConstraint("dataset_id", "message_id", name="uq_annotation_records_dataset_message"),
        Index("ix_annotation_records_dataset_position", "dataset_id", "position"),
    )
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("annotation_datasets.id", ondelete="CASCADE"))
    position: Mapped[int]  # order of adding inside the dataset: records are offered in this order
    message_id: Mapped[str | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    author_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    prompt: Mapped[str] = mapped_column(Text, default="")
    answer: Mapped[str] = mapped_column(Text, default="")
    candidates: Mapped[list] = mapped_column(JSON, default=list)  # [{"id", "text"}] for rankings
    meta: Mapped[dict] = mapped_column(JSON, default=dict)  # e.g. model_version, thumbs, source
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AnnotationResponse(Base):
    __tablename__ = "annotation_responses"
    __table_args__ = (
        UniqueConstraint("record_id", "annotator_id", name="uq_annotation_responses_record_annotator"),
        CheckConstraint("status IN ('submitted', 'discarded')", name="status_known"),
        Index("ix_annotation_responses_dataset_annotator", "dataset_id", "annotator_id"),
    )
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    record_id: Mapped[str] = mapped_column(ForeignKey("annotation_records.id", ondelete="CASCADE"),
                                           index=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("annotation_datasets.id", ondelete="CASCADE"))
    annotator_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))
    values: Mapped[dict] = mapped_column(JSON, default=dict)  # question name -> answer
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
