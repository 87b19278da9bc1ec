"""Request-scoped dependencies: the platform, the caller, paging."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.requests import HTTPConnection

from xueliang.access.principal import Principal
from xueliang.app import Platform
from xueliang.core.errors import AuthenticationFailed

_bearer = HTTPBearer(auto_error=False, description="Session token from /auth/login, or an API key")

T = TypeVar("T")


def platform(request: HTTPConnection) -> Platform:
    p: Platform = request.app.state.platform
    return p


def client_source(request: Request) -> str:
    """The caller's address; X-Forwarded-For is believed only from configured proxies."""
    peer = request.client.host if request.client else ""
    trusted = platform(request).settings.http.trusted_proxies
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded and peer in trusted:
        candidate = forwarded.split(",")[0].strip()
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            return peer
    return peer


def bearer_token(
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    if creds is None or not creds.credentials:
        raise AuthenticationFailed("a bearer token is required")
    return creds.credentials


def current_principal(request: Request, token: Annotated[str, Depends(bearer_token)]) -> Principal:
    return platform(request).auth.authenticate(token, source=client_source(request))


PlatformDep = Annotated[Platform, Depends(platform)]
PrincipalDep = Annotated[Principal, Depends(current_principal)]


@dataclass(frozen=True, slots=True)
class Paging:
    offset: int
    limit: int


def paging(
    offset: Annotated[int, Query(ge=0, le=100_000_000, description="Items to skip")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="Items per page")] = 50,
) -> Paging:
    return Paging(offset, limit)


PagingDep = Annotated[Paging, Depends(paging)]


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    offset: int
    limit: int


def page(items: list[T], total: int, paging: Paging) -> Page[T]:
    return Page[T](items=items, total=total, offset=paging.offset, limit=paging.limit)
