from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from xueliang.api.deps import Page, PagingDep, PlatformDep, PrincipalDep, page
from xueliang.api.errors import ERROR_RESPONSES
from xueliang.media.holds import HoldCreate, HoldView
from xueliang.media.storage import StorageView

router = APIRouter(tags=["media"], responses=ERROR_RESPONSES)


@router.get(
    "/storage",
    response_model=StorageView,
    summary="Recording storage: each tier's use and free space, the policy, the last sweep "
    "and start-up repair (needs system.manage)",
)
def storage_status(p: PlatformDep, principal: PrincipalDep) -> StorageView:
    return p.storage.status(principal)


@router.post(
    "/holds",
    status_code=201,
    response_model=HoldView,
    summary="Place a legal hold: the channel's recordings in [start, end) are never deleted "
    "(needs recording.hold; audited with the reason)",
)
def create_hold(body: HoldCreate, p: PlatformDep, principal: PrincipalDep) -> HoldView:
    return p.holds.create(principal, body)


@router.get("/holds", response_model=Page[HoldView], summary="Legal holds, newest first")
def list_holds(
    p: PlatformDep,
    principal: PrincipalDep,
    paging: PagingDep,
    channel_id: Annotated[
        str | None, Query(max_length=20, description="20-digit channel ID")
    ] = None,
    active: Annotated[
        bool | None, Query(description="Only active (true) or released (false) holds")
    ] = None,
) -> Page[HoldView]:
    items, total = p.holds.list(
        principal, channel_id=channel_id, active=active, offset=paging.offset, limit=paging.limit
    )
    return page(items, total, paging)


@router.delete(
    "/holds/{hold_id}",
    response_model=HoldView,
    summary="Release a legal hold; the hold is kept, marked released (audited with the reason)",
)
def release_hold(
    hold_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    reason: Annotated[str, Query(min_length=1, max_length=500, description="Why the hold ends")],
    p: PlatformDep,
    principal: PrincipalDep,
) -> HoldView:
    return p.holds.release(principal, hold_id, reason)
