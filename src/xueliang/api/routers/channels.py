from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from xueliang.api.deps import Page, PagingDep, PlatformDep, PrincipalDep, page
from xueliang.api.errors import ERROR_RESPONSES
from xueliang.registry.schemas import ChannelCreate, ChannelUpdate, ChannelView, Status

router = APIRouter(prefix="/channels", tags=["registry"], responses=ERROR_RESPONSES)
ChannelId = Annotated[str, Path(max_length=20, description="20-digit GB/T 28181 ID")]


@router.get("", response_model=Page[ChannelView], summary="Channels (点位) in the caller's area")
def list_channels(
    p: PlatformDep,
    principal: PrincipalDep,
    paging: PagingDep,
    org: Annotated[
        str | None, Query(max_length=20, description="Within this organisation's subtree")
    ] = None,
    device_id: Annotated[str | None, Query(max_length=20)] = None,
    status: Status | None = None,
    point_class: Annotated[int | None, Query(ge=1, le=3)] = None,
    q: Annotated[
        str | None, Query(max_length=64, description="Name or address contains, or ID starts with")
    ] = None,
) -> Page[ChannelView]:
    items, total = p.channels.list(
        principal,
        org=org,
        device=device_id,
        status=status,
        point_class=point_class,
        q=q,
        offset=paging.offset,
        limit=paging.limit,
    )
    return page(items, total, paging)


@router.post("", response_model=ChannelView, status_code=status.HTTP_201_CREATED)
def create_channel(body: ChannelCreate, p: PlatformDep, principal: PrincipalDep) -> ChannelView:
    return p.channels.create(principal, body)


@router.get("/{channel_id}", response_model=ChannelView)
def get_channel(channel_id: ChannelId, p: PlatformDep, principal: PrincipalDep) -> ChannelView:
    return p.channels.get(principal, channel_id)


@router.patch("/{channel_id}", response_model=ChannelView)
def update_channel(
    channel_id: ChannelId, body: ChannelUpdate, p: PlatformDep, principal: PrincipalDep
) -> ChannelView:
    return p.channels.update(principal, channel_id, body)


@router.delete("/{channel_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_channel(channel_id: ChannelId, p: PlatformDep, principal: PrincipalDep) -> None:
    p.channels.delete(principal, channel_id)
