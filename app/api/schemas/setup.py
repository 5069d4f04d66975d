"""First-run schemas: whether the server wants a sign-in, and the form that creates its admin."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class AuthStatus(BaseModel):
    login_required: bool  # /v1/* needs an API key or a login session (no anonymous user)
    needs_admin: bool  # nobody can sign in yet: the first visitor creates the admin account


class AdminSetup(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=8, max_length=1024)
