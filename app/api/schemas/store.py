"""Request and response shapes for conversations, feedback, users, API keys and login."""
from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from app.core.names import BIDI_CONTROLS
from app.store.crud_users import PriorityClass


class _Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ConversationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str | None = Field(default=None, max_length=256)


class ConversationRename(BaseModel):
    """PATCH /v1/conversations/{id}: a new title, shown in every conversation list."""
    model_config = ConfigDict(extra="forbid")
    title: str = Field(max_length=256)

    @field_validator("title")
    @classmethod
    def _readable(cls, title: str) -> str:
        title = title.strip()
        if not title:
            raise ValueError("title must not be empty")
        if any(unicodedata.category(c) == "Cc" or c in BIDI_CONTROLS for c in title):
            raise ValueError("title must not contain control characters (line breaks, tabs, "
                             "bidirectional overrides)")
        return title


class ConversationPublic(_Public):
    id: str
    title: str | None
    created_at: datetime
    updated_at: datetime
    model: str | None


class FeedbackPublic(_Public):
    id: str
    message_id: str
    user_id: str | None
    thumbs: str | None
    rating: int | None
    tags: list[str]
    comment: str | None
    correction: str | None
    created_at: datetime  # the record's first change
    updated_at: datetime | None = None  # its latest change


class MessagePublic(_Public):
    id: str
    parent_id: str | None
    role: str
    content: str
    model_version: str | None
    sampling_params: dict | None
    engine_settings: dict | None
    finish_reason: str | None
    created_at: datetime
    ttft_ms: float | None
    latency_ms: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    feedback: list[FeedbackPublic]


class ConversationDetail(ConversationPublic):
    messages: list[MessagePublic]


class ConversationsPublic(BaseModel):
    data: list[ConversationPublic]


class FeedbackCreate(BaseModel):
    """A change to the caller's one feedback record on a message (an upsert): the fields present
    replace the record's, absent ones keep their value, an explicit null (or [] for tags) clears."""
    model_config = ConfigDict(extra="forbid")
    message_id: str = Field(min_length=1, max_length=64)
    thumbs: Literal["up", "down"] | None = None
    rating: StrictInt | None = Field(default=None, ge=1, le=5)
    tags: list[str] = Field(default_factory=list, max_length=32)
    comment: str | None = Field(default=None, max_length=20_000)
    correction: str | None = Field(default=None, max_length=200_000)

    @model_validator(mode="after")
    def _something_given(self):
        if not self.changed_fields():
            raise ValueError("give at least one of thumbs, rating, tags, comment, correction")
        return self

    def changed_fields(self) -> list[str]:
        return sorted(self.model_fields_set - {"message_id"})


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024)


class LoginPublic(BaseModel):
    token: str
    role: str
    expires_at: datetime


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=8, max_length=1024)
    role: Literal["user", "annotator", "admin"] = "user"


class UserPublic(_Public):
    id: str
    username: str
    role: str
    created_at: datetime


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=128)
    username: str | None = Field(default=None, max_length=128)  # None: the caller's own key
    priority_class: PriorityClass = PriorityClass.INTERACTIVE  # app/api/priority.py


class ApiKeyPublic(BaseModel):
    id: str
    key: str  # shown once
    name: str | None
    user_id: str
