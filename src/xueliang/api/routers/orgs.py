from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from xueliang.api.deps import Page, PagingDep, PlatformDep, PrincipalDep, page
from xueliang.api.errors import ERROR_RESPONSES
from xueliang.registry.schemas import OrgCreate, OrgLevel, OrgUpdate, OrgView

router = APIRouter(prefix="/orgs", tags=["registry"], responses=ERROR_RESPONSES)
Code = Annotated[str, Path(max_length=20, description="Administrative code")]


@router.get("", response_model=Page[OrgView], summary="Organisations in the caller's area")
def list_orgs(
    p: PlatformDep,
    principal: PrincipalDep,
    paging: PagingDep,
    parent: Annotated[str | None, Query(max_length=20, description="Direct children of")] = None,
    level: OrgLevel | None = None,
    q: Annotated[
        str | None, Query(max_length=64, description="Name contains, or code starts with")
    ] = None,
) -> Page[OrgView]:
    items, total = p.orgs.list(
        principal, parent=parent, level=level, q=q, offset=paging.offset, limit=paging.limit
    )
    return page(items, total, paging)


@router.post("", response_model=OrgView, status_code=status.HTTP_201_CREATED)
def create_org(body: OrgCreate, p: PlatformDep, principal: PrincipalDep) -> OrgView:
    return p.orgs.create(principal, body)


@router.get("/{code}", response_model=OrgView)
def get_org(code: Code, p: PlatformDep, principal: PrincipalDep) -> OrgView:
    return p.orgs.get(principal, code)


@router.patch("/{code}", response_model=OrgView)
def update_org(code: Code, body: OrgUpdate, p: PlatformDep, principal: PrincipalDep) -> OrgView:
    return p.orgs.update(principal, code, body)


@router.delete("/{code}", status_code=status.HTTP_204_NO_CONTENT)
def delete_org(code: Code, p: PlatformDep, principal: PrincipalDep) -> None:
    p.orgs.delete(principal, code)
