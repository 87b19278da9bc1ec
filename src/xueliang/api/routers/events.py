"""The platform's events (GB/T 28181 alarms today, analytics later) and the tracks of moving
channels (GB/T 28181 MobilePosition)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import AwareDatetime

from xueliang.api.deps import Page, PagingDep, PlatformDep, PrincipalDep, page
from xueliang.api.errors import ERROR_RESPONSES
from xueliang.events.schemas import EventView, TrackPoint

router = APIRouter(tags=["events"], responses=ERROR_RESPONSES)


@router.get(
    "/events",
    response_model=Page[EventView],
    summary="Events (alarms) of the channels and devices in your area, newest first",
)
def list_events(
    p: PlatformDep,
    principal: PrincipalDep,
    paging: PagingDep,
    channel_id: Annotated[
        str | None, Query(max_length=20, description="20-digit channel ID")
    ] = None,
    kind: Annotated[str | None, Query(max_length=32, description="e.g. gb.alarm")] = None,
    start: Annotated[AwareDatetime | None, Query(description="ISO 8601 with zone")] = None,
    end: Annotated[AwareDatetime | None, Query(description="ISO 8601 with zone")] = None,
) -> Page[EventView]:
    items, total = p.events.list(
        principal,
        channel_id=channel_id,
        kind=kind,
        start=start,
        end=end,
        offset=paging.offset,
        limit=paging.limit,
    )
    return page(items, total, paging)


@router.get(
    "/channels/{channel_id}/track",
    response_model=Page[TrackPoint],
    summary="The positions a moving channel reported (MobilePosition), oldest first",
)
def channel_track(
    channel_id: Annotated[str, Path(max_length=20, description="20-digit GB/T 28181 ID")],
    p: PlatformDep,
    principal: PrincipalDep,
    paging: PagingDep,
    start: Annotated[AwareDatetime | None, Query(description="ISO 8601 with zone")] = None,
    end: Annotated[AwareDatetime | None, Query(description="ISO 8601 with zone")] = None,
) -> Page[TrackPoint]:
    items, total = p.events.track(
        principal,
        channel_id,
        start=start,
        end=end,
        offset=paging.offset,
        limit=paging.limit,
    )
    return page(items, total, paging)
