from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import FileResponse
from pydantic import AwareDatetime

from xueliang.api.deps import Page, PagingDep, PlatformDep, PrincipalDep, page
from xueliang.api.errors import ERROR_RESPONSES
from xueliang.core.errors import NotFound
from xueliang.media.segments import GAP_TOLERANCE_SECONDS, GapReport, SegmentView

router = APIRouter(prefix="/recordings", tags=["media"], responses=ERROR_RESPONSES)


@router.get(
    "",
    response_model=Page[SegmentView],
    summary="Recorded segments of a channel overlapping a time range, oldest first",
)
def list_recordings(
    p: PlatformDep,
    principal: PrincipalDep,
    paging: PagingDep,
    channel_id: Annotated[str, Query(max_length=20, description="20-digit channel ID")],
    start: Annotated[datetime | None, Query(description="ISO 8601 with zone")] = None,
    end: Annotated[datetime | None, Query(description="ISO 8601 with zone")] = None,
) -> Page[SegmentView]:
    items, total = p.segments.list(
        principal, channel_id, start=start, end=end, offset=paging.offset, limit=paging.limit
    )
    return page(items, total, paging)


@router.get(
    "/gaps",
    response_model=GapReport,
    summary="The parts of a time range that no recording of the channel covers",
)
def recording_gaps(
    p: PlatformDep,
    principal: PrincipalDep,
    channel_id: Annotated[str, Query(max_length=20, description="20-digit channel ID")],
    start: Annotated[AwareDatetime, Query(description="ISO 8601 with zone")],
    end: Annotated[AwareDatetime, Query(description="ISO 8601 with zone")],
    tolerance: Annotated[
        float, Query(ge=0, le=3600, description="Seconds; shorter holes are not gaps")
    ] = GAP_TOLERANCE_SECONDS,
) -> GapReport:
    return p.segments.gaps(principal, channel_id, start, end, tolerance=tolerance)


@router.get(
    "/{segment_id}/media",
    summary="The segment's media (fragmented MP4); audited as playback",
    response_class=FileResponse,
    responses={200: {"content": {"video/mp4": {}}}},
)
def segment_media(
    segment_id: Annotated[int, Path(ge=1, le=2**31 - 1)], p: PlatformDep, principal: PrincipalDep
) -> FileResponse:
    channel_id, path = p.segments.open_for_download(principal, segment_id)
    if not path.is_file():
        raise NotFound(f"the file of recording {segment_id} is missing")
    return FileResponse(path, media_type="video/mp4", filename=f"{channel_id}-{path.name}")
