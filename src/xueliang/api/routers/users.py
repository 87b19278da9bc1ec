from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from xueliang.access.permissions import Permission
from xueliang.access.schemas import (
    RoleCreate,
    RoleUpdate,
    RoleView,
    UserCreate,
    UserCreated,
    UserUpdate,
    UserView,
)
from xueliang.api.deps import Page, PagingDep, PlatformDep, PrincipalDep, page
from xueliang.api.errors import ERROR_RESPONSES

router = APIRouter(tags=["accounts"], responses=ERROR_RESPONSES)
UserId = Annotated[int, Path(ge=1, le=2**31 - 1)]
RoleName = Annotated[str, Path(max_length=64)]


@router.get("/users", response_model=Page[UserView])
def list_users(
    p: PlatformDep,
    principal: PrincipalDep,
    paging: PagingDep,
    q: Annotated[str | None, Query(max_length=64)] = None,
) -> Page[UserView]:
    items, total = p.users.list_users(principal, q=q, offset=paging.offset, limit=paging.limit)
    return page(items, total, paging)


@router.post(
    "/users",
    response_model=UserCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Create a user; without a password one is generated and returned once",
)
def create_user(body: UserCreate, p: PlatformDep, principal: PrincipalDep) -> UserCreated:
    return p.users.create_user(principal, body)


@router.get("/users/{user_id}", response_model=UserView)
def get_user(user_id: UserId, p: PlatformDep, principal: PrincipalDep) -> UserView:
    return p.users.get_user(principal, user_id)


@router.patch("/users/{user_id}", response_model=UserView)
def update_user(
    user_id: UserId, body: UserUpdate, p: PlatformDep, principal: PrincipalDep
) -> UserView:
    return p.users.update_user(principal, user_id, body)


@router.delete("/users/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_user(user_id: UserId, p: PlatformDep, principal: PrincipalDep) -> None:
    p.users.delete_user(principal, user_id)


@router.get("/roles", response_model=list[RoleView])
def list_roles(p: PlatformDep, principal: PrincipalDep) -> list[RoleView]:
    return p.users.list_roles(principal)


@router.post("/roles", response_model=RoleView, status_code=status.HTTP_201_CREATED)
def create_role(body: RoleCreate, p: PlatformDep, principal: PrincipalDep) -> RoleView:
    return p.users.create_role(principal, body)


@router.get("/roles/{name}", response_model=RoleView)
def get_role(name: RoleName, p: PlatformDep, principal: PrincipalDep) -> RoleView:
    return p.users.get_role(principal, name)


@router.patch("/roles/{name}", response_model=RoleView)
def update_role(
    name: RoleName, body: RoleUpdate, p: PlatformDep, principal: PrincipalDep
) -> RoleView:
    return p.users.update_role(principal, name, body)


@router.delete("/roles/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_role(name: RoleName, p: PlatformDep, principal: PrincipalDep) -> None:
    p.users.delete_role(principal, name)


@router.get("/permissions", response_model=list[str], summary="Every permission a role can hold")
def list_permissions(_principal: PrincipalDep) -> list[str]:
    return sorted(p.value for p in Permission)
