"""Login (session tokens, failed attempts throttled), the first-run admin account, user creation
and API keys (admin only)."""
from __future__ import annotations

import threading
import unicodedata

from fastapi import APIRouter, Request

from app.api.deps import AdminUser, SessionDep, StateDep
from app.api.errors import APIError
from app.api.schemas.api_keys import ApiKeyInfo, ApiKeyList
from app.api.schemas.setup import AdminSetup, AuthStatus
from app.api.schemas.store import (ApiKeyCreate, ApiKeyPublic, LoginPublic, LoginRequest,
                                   UserCreate, UserPublic)
from app.core.names import UnusableName
from app.store import crud_accounts, crud_users

router = APIRouter(prefix="/v1", tags=["auth"])
_first_admin = threading.Lock()  # two first visitors at once: one of them creates the admin


@router.get("/auth/status", response_model=AuthStatus)
def read_auth_status(session: SessionDep, state: StateDep) -> AuthStatus:
    """Open to anyone: the UI asks it before showing a sign-in or the create-admin form."""
    return AuthStatus(login_required=state.settings.auth_enabled,
                      needs_admin=not crud_accounts.can_sign_in_anyone(session))


@router.post("/auth/setup", response_model=LoginPublic)
def create_first_admin(body: AdminSetup, state: StateDep) -> LoginPublic:
    """Open to anyone while no account can sign in (a new install); signs the new admin in.
    Its own transaction, committed inside the lock: the next caller sees the admin."""
    with _first_admin, state.store.transaction() as session:
        try:
            admin = crud_accounts.create_first_admin(session, username=body.username,
                                                     password=body.password)
        except UnusableName as e:
            raise APIError(400, str(e), param="username", code="invalid_username") from e
        if admin is None:
            raise APIError(409, "This server already has an admin account; sign in instead.",
                           code="setup_done")
        auth, token = crud_users.create_auth_session(session, user_id=admin.id,
                                                     ttl_s=state.settings.session_ttl_s)
        return LoginPublic(token=token, role=admin.role, expires_at=auth.expires_at)


@router.post("/auth/login", response_model=LoginPublic)
def login(body: LoginRequest, request: Request, session: SessionDep,
          state: StateDep) -> LoginPublic:
    throttle, client = state.guards.login, request.client.host if request.client else "unknown"
    if (wait_s := throttle.retry_after_s(body.username, client)) is not None:
        raise APIError(429, f"Too many failed sign-ins for {body.username!r}; retry in {wait_s} s.",
                       code="too_many_login_attempts", headers={"Retry-After": str(wait_s)})
    # Names are stored in NFKC form (`app.core.names`): a full-width or composed spelling of the
    # same name signs in as that name.
    username = unicodedata.normalize("NFKC", body.username)
    user = crud_users.get_user_by_username(session, username=username)
    if user is None or not crud_users.verify_password(body.password, user.password_hash):
        throttle.failed(body.username, client)
        raise APIError(401, "Incorrect username or password.", code="invalid_credentials")
    throttle.succeeded(body.username, client)
    auth, token = crud_users.create_auth_session(session, user_id=user.id,
                                                 ttl_s=state.settings.session_ttl_s)
    return LoginPublic(token=token, role=user.role, expires_at=auth.expires_at)


@router.post("/users", response_model=UserPublic)
def create_user(body: UserCreate, session: SessionDep, _admin: AdminUser) -> UserPublic:
    try:
        user = crud_accounts.create_account(session, username=body.username,
                                            password=body.password, role=body.role)
    except crud_accounts.UserExists as e:
        raise APIError(409, str(e), param="username", code="user_exists") from e
    except UnusableName as e:  # invisible characters, or reads like another user's name
        raise APIError(400, str(e), param="username", code="invalid_username") from e
    return UserPublic.model_validate(user)


@router.post("/api-keys", response_model=ApiKeyPublic)
def create_api_key(body: ApiKeyCreate, session: SessionDep, admin: AdminUser) -> ApiKeyPublic:
    user_id = admin.id
    if body.username:
        owner = crud_users.get_user_by_username(session, username=body.username)
        if owner is None:
            raise APIError(404, f"No user named {body.username!r}", param="username",
                           code="not_found")
        user_id = owner.id
    row, key = crud_users.create_api_key(session, user_id=user_id, name=body.name,
                                         priority_class=body.priority_class)
    return ApiKeyPublic(id=row.id, key=key, name=row.name, user_id=user_id)


@router.get("/api-keys", response_model=ApiKeyList)
def read_api_keys(session: SessionDep, _admin: AdminUser) -> ApiKeyList:
    return ApiKeyList(data=[ApiKeyInfo.from_row(key, username)
                            for key, username in crud_users.list_api_keys(session)])


@router.delete("/api-keys/{key_id}", response_model=ApiKeyInfo)
def revoke_api_key(key_id: str, session: SessionDep, state: StateDep,
                   _admin: AdminUser) -> ApiKeyInfo:
    row = crud_users.revoke_api_key(session, key_id=key_id)
    if row is None:
        raise APIError(404, f"No API key with id {key_id!r}", param="key_id", code="not_found")
    state.guards.verifier.cache.discard(row.key_hash)  # no grace period in this process
    return ApiKeyInfo.from_row(row, crud_users.username_of(session, user_id=row.user_id))
