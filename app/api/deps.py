"""Request dependencies: the app's state, a database session, and the authenticated user.

Auth: `Authorization: Bearer <token>` with an API key or a login session token. With API keys
enabled in settings, /v1/* needs one (401 otherwise); without, anonymous requests act as the
local admin user "local", a known token still identifies its user, and an unknown token is
ignored (OpenAI clients always send some key).
"""
from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from app.api.errors import APIError
from app.api.metrics import ServingMetrics
from app.core.config import Settings
from app.serving.model_host import ModelHost, ModelLoadingError, ModelNotFoundError, ServedModel
from app.serving.rollout import Rollout
from app.store import crud_users
from app.store.session import Store
from app.store.outbox import Outbox
from app.store.writer import StoreWriter

LOCAL_USERNAME = "local"


@dataclass(slots=True)
class Principal:
    id: str
    username: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_annotator(self) -> bool:
        return self.role in ("annotator", "admin")


@dataclass(slots=True)
class AppState:
    settings: Settings
    store: Store
    writer: StoreWriter
    host: ModelHost
    metrics: ServingMetrics
    local_user: Principal
    loop: asyncio.AbstractEventLoop  # the server's loop: other threads schedule model swaps on it
    rollout: Rollout | None = None  # public name -> production / canary version (None: no routing)
    outbox: Outbox = None  # durable writes waiting for the store; read-your-writes (set by create_app)


def get_state(request: Request) -> AppState:
    return request.app.state.flywheel


StateDep = Annotated[AppState, Depends(get_state)]


def get_session(state: StateDep) -> Iterator[Session]:
    """One transaction per request: committed when the handler returns, rolled back on error."""
    with state.store.transaction() as session:
        yield session


# scope="function": the transaction commits before the response is sent, so a client's next
# request sees what this one wrote.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_current_user(request: Request, state: StateDep) -> Principal:
    token = _bearer_token(request)
    if token is None:
        if state.settings.auth_enabled:
            raise APIError(401, "You didn't provide an API key. Provide it in the Authorization "
                                "header as 'Bearer YOUR_KEY'.", code="missing_api_key")
        return state.local_user
    with state.store.session_factory() as session:
        user = crud_users.user_for_token(session, token=token)
        if user is None and not state.settings.auth_enabled:
            return state.local_user  # clients like openai's always send some key
        if user is None:
            raise APIError(401, "Incorrect API key provided.", code="invalid_api_key")
        return Principal(id=user.id, username=user.username, role=user.role)


CurrentUser = Annotated[Principal, Depends(get_current_user)]


def get_annotator(user: CurrentUser) -> Principal:
    if not user.is_annotator:
        raise APIError(403, "This action needs the annotator role.", code="forbidden")
    return user


def get_admin(user: CurrentUser) -> Principal:
    if not user.is_admin:
        raise APIError(403, "This action needs the admin role.", code="forbidden")
    return user


AnnotatorUser = Annotated[Principal, Depends(get_annotator)]
AdminUser = Annotated[Principal, Depends(get_admin)]


def _bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise APIError(401, "Malformed Authorization header; expected 'Bearer <token>'.",
                       code="invalid_api_key")
    return token.strip()


def resolve_model(state: AppState, model_id: str, route_key: str | None = None) -> ServedModel:
    """The ready model named `model_id` (the public name: production, or the canary for the
    conversation `route_key` when it falls in the canary share): 404 when not served here, 503
    while it loads."""
    try:
        if state.rollout is not None:
            return state.rollout.resolve(state.host, model_id, route_key)
        return state.host.get(model_id)
    except ModelLoadingError as e:
        raise APIError(503, str(e), param="model", code="model_loading",
                       headers={"Retry-After": "5"}) from e
    except ModelNotFoundError as e:
        raise APIError(404, str(e), param="model", code="model_not_found") from e
