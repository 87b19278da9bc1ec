from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from xueliang.access.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyView, LoginResult, UserView
from xueliang.api.deps import PlatformDep, PrincipalDep, bearer_token, client_source, platform
from xueliang.api.errors import ERROR_RESPONSES, ErrorBody
from xueliang.core.text import reject_nul

router = APIRouter(prefix="/auth", tags=["auth"], responses=ERROR_RESPONSES)


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: Annotated[str, Field(min_length=1, max_length=64), AfterValidator(reject_nul)]
    password: Annotated[str, Field(min_length=1, max_length=256)]


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    old_password: Annotated[str, Field(min_length=1, max_length=256)]
    new_password: Annotated[str, Field(min_length=1, max_length=256), AfterValidator(reject_nul)]


class Me(UserView):
    permissions: list[str]


@router.post(
    "/login",
    response_model=LoginResult,
    summary="Log in with username and password; returns a bearer token",
    responses={423: {"model": ErrorBody, "description": "Account locked (Retry-After)"}},
)
def login(body: LoginRequest, request: Request) -> LoginResult:
    return platform(request).auth.login(body.username, body.password, source=client_source(request))


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, summary="End this session")
def logout(
    p: PlatformDep, principal: PrincipalDep, token: Annotated[str, Depends(bearer_token)]
) -> None:
    p.auth.logout(principal, token)


@router.get("/me", response_model=Me, summary="The caller, its roles, area and permissions")
def me(p: PlatformDep, principal: PrincipalDep) -> Me:
    if principal.user_pk is None:
        raise AssertionError("tokens always belong to users")
    view = p.users.get_user(principal, principal.user_pk)
    return Me(**view.model_dump(), permissions=sorted(principal.permissions))


@router.post("/password", status_code=status.HTTP_204_NO_CONTENT, summary="Change own password")
def change_password(body: PasswordChange, p: PlatformDep, principal: PrincipalDep) -> None:
    p.auth.change_own_password(principal, body.old_password, body.new_password)


@router.get("/api-keys", response_model=list[ApiKeyView], summary="The caller's API keys")
def list_keys(p: PlatformDep, principal: PrincipalDep) -> list[ApiKeyView]:
    return p.auth.list_api_keys(principal)


@router.post(
    "/api-keys",
    response_model=ApiKeyCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key for a machine acting as the caller (shown once)",
)
def create_key(body: ApiKeyCreate, p: PlatformDep, principal: PrincipalDep) -> ApiKeyCreated:
    return p.auth.create_api_key(principal, body)


@router.delete(
    "/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke an API key"
)
def revoke_key(
    key_id: Annotated[int, Path(ge=1, le=2**31 - 1)], p: PlatformDep, principal: PrincipalDep
) -> None:
    p.auth.revoke_api_key(principal, key_id)
