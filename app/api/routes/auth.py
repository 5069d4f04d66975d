"""Login (session tokens), user creation and API keys (admin only)."""
from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import AdminUser, SessionDep, StateDep
from app.api.errors import APIError
from app.api.schemas.store import (ApiKeyCreate, ApiKeyPublic, LoginPublic, LoginRequest,
                                   UserCreate, UserPublic)
from app.store import crud_users

router = APIRouter(prefix="/v1", tags=["auth"])


@router.post("/auth/login", response_model=LoginPublic)
def login(body: LoginRequest, session: SessionDep, state: StateDep) -> LoginPublic:
    user = crud_users.get_user_by_username(session, username=body.username)
    if user is None or not crud_users.verify_password(body.password, user.password_hash):
        raise APIError(401, "Incorrect username or password.", code="invalid_credentials")
    auth, token = crud_users.create_auth_session(session, user_id=user.id,
                                                 ttl_s=state.settings.session_ttl_s)
    return LoginPublic(token=token, role=user.role, expires_at=auth.expires_at)


@router.post("/users", response_model=UserPublic)
def create_user(body: UserCreate, session: SessionDep, _admin: AdminUser) -> UserPublic:
    if crud_users.get_user_by_username(session, username=body.username) is not None:
        raise APIError(409, f"user {body.username!r} already exists", param="username",
                       code="user_exists")
    user = crud_users.create_user(session, username=body.username, password=body.password,
                                  role=body.role)
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
    row, key = crud_users.create_api_key(session, user_id=user_id, name=body.name)
    return ApiKeyPublic(id=row.id, key=key, name=row.name, user_id=user_id)
