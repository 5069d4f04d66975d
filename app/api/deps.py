"""Request dependencies: the app's state, a database session, and the authenticated user.

Auth: `Authorization: Bearer <token>` with an API key or a login session token, verified through
a short cache (`app.api.credentials`) so a brief store outage does not stop chat. With API keys
enabled in settings, /v1/* needs a live one (401 otherwise). Without, anonymous requests act as
the local admin user "local"; a token in this server's own formats (a key from `flywheel keys
create`, a login session) still identifies its user, and any other token (OpenAI clients always
send some key) is ignored without a database lookup. With auth off a store error during that
lookup also falls back to "local", which grants nothing an anonymous request doesn't have.
Per-key rate limits are checked here too, after the user is known.
"""
from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.api.errors import APIError
from app.api.guards import AuthGuards
from app.api.metrics import ServingMetrics
from app.api.rate_limit import requested_tokens
from app.core.config import Settings
from app.serving.model_host import ModelHost, ModelLoadingError, ModelNotFoundError, ServedModel
from app.serving.rollout import Rollout
from app.store import crud_users
from app.store.crud_users import PriorityClass
from app.store.session import Store
from app.store.outbox import Outbox
from app.store.writer import StoreWriter

LOCAL_USERNAME = "local"
# where tokens are rate-limited
GENERATION_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/responses")


@dataclass(slots=True)
class Principal:
    id: str
    username: str
    role: str
    key_id: str | None = None  # the API key that authenticated the request (None: session, local)
    priority_class: PriorityClass = PriorityClass.INTERACTIVE  # the key's; app/api/priority.py

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
    guards: AuthGuards = None  # credential cache, rate limits, login throttle (set by create_app)
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


async def get_current_user(request: Request, state: StateDep) -> Principal:
    user = await _authenticate(request, state)
    await _check_rate_limits(request, state, user)
    return user


async def _authenticate(request: Request, state: AppState) -> Principal:
    auth_enabled = state.settings.auth_enabled
    try:
        token = _bearer_token(request)
    except APIError:
        if auth_enabled:
            raise
        token = None  # auth off: clients such as lm_eval send "Bearer " with no key at all
    if token is None or (not auth_enabled and not crud_users.is_own_token(token)):
        if auth_enabled:
            raise APIError(401, "You didn't provide an API key. Provide it in the Authorization "
                                "header as 'Bearer YOUR_KEY'.", code="missing_api_key")
        return state.local_user
    try:
        credential = await state.guards.verifier.verify(token, state.store)
    except SQLAlchemyError:
        if auth_enabled:
            raise  # 503 store_unavailable (app.api.errors) when nothing recent is cached
        return state.local_user
    if credential is None:
        if not auth_enabled:
            return state.local_user
        raise APIError(401, "Incorrect API key provided.", code="invalid_api_key")
    return Principal(id=credential.user_id, username=credential.username, role=credential.role,
                     key_id=credential.key_id, priority_class=credential.priority_class)


async def _check_rate_limits(request: Request, state: AppState, user: Principal) -> None:
    limits = state.guards.key_limits
    token_cost = 0
    if limits.limits_tokens and request.method == "POST" and request.url.path in GENERATION_PATHS:
        token_cost = await _requested_tokens(request, state)
    refusal = limits.admit(user.key_id or f"user:{user.id}", token_cost)
    if refusal is not None:
        raise APIError(429, f"Rate limit reached: {refusal.per_minute} {refusal.limit} per minute "
                            f"for this key. Retry in {refusal.retry_after_s} s.",
                       code="rate_limit_exceeded",
                       headers={"Retry-After": str(refusal.retry_after_s)})


async def _requested_tokens(request: Request, state: AppState) -> int:
    try:
        payload = await request.json()  # already read and parsed for the route: cached
    except ValueError:
        return 0  # the route answers 400 for it
    if not isinstance(payload, dict):
        return 0
    try:
        max_model_len = resolve_model(state, str(payload.get("model", ""))).max_model_len
    except APIError:
        max_model_len = None  # unknown or loading model: the route answers 404 / 503
    return requested_tokens(payload, max_model_len)


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
