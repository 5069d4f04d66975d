"""Shapes of the API-key administration endpoints (list, revoke). Creation keeps `ApiKeyCreate` /
`ApiKeyPublic` in `store.py`; the plain key is never part of these."""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from app.store.crud_users import KeyStatus, PriorityClass, key_status


class ApiKeyInfo(BaseModel):
    id: str
    name: str | None
    username: str
    status: KeyStatus
    bootstrap: bool  # passed with `flywheel serve --api-key` (revoked when another key is passed)
    created_at: datetime
    last_used_at: datetime | None  # recorded in batches: up to about a minute behind
    expires_at: datetime | None
    revoked_at: datetime | None
    priority_class: PriorityClass  # app/api/priority.py

    @classmethod
    def from_row(cls, key, username: str) -> ApiKeyInfo:
        return cls(id=key.id, name=key.name, username=username, status=key_status(key),
                   bootstrap=key.is_bootstrap, created_at=key.created_at,
                   last_used_at=key.last_used_at, expires_at=key.expires_at,
                   revoked_at=key.revoked_at, priority_class=PriorityClass(key.priority_class))


class ApiKeyList(BaseModel):
    object: str = "list"
    data: list[ApiKeyInfo]
