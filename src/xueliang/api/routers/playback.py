"""Recorded video by time range (one continuous stream), its timeline, and snapshots."""

from __future__ import annotations

from datetime import datetime
from itertools import chain
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from xueliang.api.deps import PlatformDep, PrincipalDep
from xueliang.api.errors import ERROR_RESPONSES
from xueliang.media.fmp4 import BoxSplitter, codec_from_init

router = APIRouter(tags=["media"], responses=ERROR_RESPONSES)
ChannelId = Annotated[str, Path(max_length=20, description="20-digit GB/T 28181 ID")]
Start = Annotated[datetime, Query(description="ISO 8601 with zone")]
End = Annotated[datetime, Query(description="ISO 8601 with zone; at most 24 hours after start")]


class SpanView(BaseModel):
    start: datetime = Field(description="Recorded time of the span's first frame")
    end: datetime
    offset: float = Field(description="Seconds into the playback stream where the span begins")


class GapView(BaseModel):
    start: datetime
    end: datetime


class TimelineView(BaseModel):
    channel_id: str
    start: datetime
    end: datetime
    first_frame: datetime = Field(
        description="Recorded time of the stream's first frame (the key frame at or before start)"
    )
    spans: list[SpanView]
    gaps: list[GapView] = Field(description="Left out of the stream: playback runs on across them")


@router.get(
    "/channels/{channel_id}/playback",
    summary="Recorded video of [start, end) as one continuous fragmented MP4; audited",
    description="Remuxed from the recorded segments, never re-encoded, and streamed as it is "
    "read. Starts on the key frame at or before `start` (its recorded time is in "
    "`X-Playback-Start`). Gaps in the recording are left out, so the stream plays on across "
    "them; `X-Playback-Gaps` counts them and `/playback/timeline` maps stream time to recorded "
    "time. Seek with a new request and a new `start`; play faster with the player's "
    "`playbackRate` (2×, 4×, 8×).",
    response_class=StreamingResponse,
    responses={200: {"content": {"video/mp4": {}}}},
)
def playback(
    channel_id: ChannelId, start: Start, end: End, p: PlatformDep, principal: PrincipalDep
) -> StreamingResponse:
    stream = p.playback.open(principal, channel_id, start, end)
    # The first chunk holds the init segment: read it now to tell a Media Source Extensions
    # player the codec string (X-Codec) before the body starts.
    chunks = iter(stream.chunks)
    first = next(chunks, b"")
    splitter = BoxSplitter()
    splitter.feed(first)
    codec = codec_from_init(splitter.init_segment or b"")
    headers = {
        "X-Playback-Start": stream.first_frame.isoformat(),
        "X-Playback-Gaps": str(stream.gaps),
        "Cache-Control": "no-store",
    }
    if codec:
        headers["X-Codec"] = codec
    return StreamingResponse(chain([first], chunks), media_type="video/mp4", headers=headers)


@router.get(
    "/channels/{channel_id}/playback/timeline",
    response_model=TimelineView,
    summary="Which recorded time the playback stream of the same range shows where",
)
def playback_timeline(
    channel_id: ChannelId, start: Start, end: End, p: PlatformDep, principal: PrincipalDep
) -> TimelineView:
    t = p.playback.timeline(principal, channel_id, start, end)
    return TimelineView(
        channel_id=t.channel_id,
        start=t.start,
        end=t.end,
        first_frame=t.first_frame,
        spans=[SpanView(start=s.start, end=s.end, offset=s.offset) for s in t.spans],
        gaps=[GapView(start=g.start, end=g.end) for g in t.gaps],
    )


@router.get(
    "/channels/{channel_id}/snapshot",
    summary="A JPEG of the channel now (newest key frame), or at a recorded time; audited",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
)
def snapshot(
    channel_id: ChannelId,
    p: PlatformDep,
    principal: PrincipalDep,
    at: Annotated[
        datetime | None, Query(description="Recorded time (ISO 8601 with zone); now if absent")
    ] = None,
) -> Response:
    snap = p.snapshots.take(principal, channel_id, at)
    return Response(
        snap.jpeg,
        media_type="image/jpeg",
        headers={"X-Snapshot-Time": snap.at.isoformat(), "Cache-Control": "no-store"},
    )
