"""Recordings kept on GB/T 28181 devices (NVRs, cameras with cards): search them (RecordInfo),
play a range back (a Playback INVITE: the stream is watched like live, from its media worker,
under a single-use ticket), steer it (MANSRTSP: pause, resume, seek, speed) and end it, or
download a range into an evidence export (a Download INVITE at a multiple of real time; the
export runs as a job: GET /exports/{id}). Every search, playback and download is audited."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request, status
from pydantic import BaseModel, Field, field_validator

from xueliang.access.permissions import Permission
from xueliang.access.principal import Principal
from xueliang.api.deps import PlatformDep, PrincipalDep
from xueliang.api.errors import ERROR_RESPONSES
from xueliang.app import Platform
from xueliang.core.errors import DeviceError, InvalidInput, NotFound
from xueliang.core.text import reject_nul
from xueliang.gb28181 import manscdp, mansrtsp
from xueliang.gb28181.downloads import DEFAULT_SPEED, MAX_SPEED
from xueliang.gb28181.endpoint import DeviceRefused
from xueliang.gb28181.stream_session import ChannelRoute
from xueliang.media.export import MIN_REASON, ExportView

router = APIRouter(tags=["GB/T 28181 device recordings"], responses=ERROR_RESPONSES)
ChannelId = Annotated[str, Path(max_length=20, description="20-digit GB/T 28181 ID")]
MAX_RANGE = timedelta(days=31)


class DeviceRecordView(BaseModel):
    start: datetime | None
    end: datetime | None
    name: str | None = None
    type: str | None = Field(default=None, description="time, alarm, manual")
    file_size: int | None = None


class DeviceRecordList(BaseModel):
    channel_id: str
    items: list[DeviceRecordView]
    complete: bool = Field(description="False when the device's answer lacked pages (SumNum)")


class PlaybackRequest(BaseModel):
    start: datetime = Field(description="ISO 8601 with zone")
    end: datetime
    reason: str | None = Field(default=None, max_length=256)


class PlaybackSessionView(BaseModel):
    session: str = Field(description="The playback's key: steer and end it with this")
    url: str | None = Field(description="Single-use ws:// address of the stream (fMP4 for MSE)")
    expires_at: datetime | None


class DownloadRequest(BaseModel):
    start: datetime = Field(description="ISO 8601 with zone")
    end: datetime = Field(description="ISO 8601 with zone; at most 24 hours after start")
    reason: str = Field(
        max_length=500, description="Why the video leaves the platform (case number, request)"
    )
    speed: int = Field(
        default=DEFAULT_SPEED,
        ge=1,
        le=MAX_SPEED,
        description="Multiple of real time the device sends at (a=downloadspeed)",
    )

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        value = reject_nul(value).strip()
        if len(value) < MIN_REASON:
            raise ValueError(f"a reason of at least {MIN_REASON} characters is required")
        return value


class ControlRequest(BaseModel):
    action: Literal["pause", "resume", "seek", "speed"]
    value: float | None = Field(
        default=None, description="seek: seconds from the range's start; speed: 0.25 … 8"
    )


def _search(
    p: Platform, principal: Principal, channel_id: str, start: datetime, end: datetime
) -> ChannelRoute:
    principal.require(Permission.VIDEO_PLAYBACK)
    p.channels.get(principal, channel_id)  # scope: PermissionDenied / NotFound
    _zoned(start, end)
    if end <= start or end - start > MAX_RANGE:
        raise InvalidInput("the range must end after it starts and span at most 31 days")
    route = p.gb28181.routes.route(channel_id)
    if route is None:
        raise NotFound(f"channel {channel_id} is not a GB/T 28181 channel")
    with p.db.transaction() as s:
        p.audit.append(
            s,
            principal,
            "video.search",
            target=f"channel:{channel_id}",
            detail={"where": "device", "start": start.isoformat(), "end": end.isoformat()},
        )
    return route


@router.get(
    "/channels/{channel_id}/device-records",
    summary="Recordings kept on the channel's GB/T 28181 device in a range (RecordInfo; audited)",
)
async def device_records(
    channel_id: ChannelId,
    p: PlatformDep,
    principal: PrincipalDep,
    start: Annotated[datetime, Query(description="ISO 8601 with zone")],
    end: Annotated[datetime, Query(description="ISO 8601 with zone")],
) -> DeviceRecordList:
    route = await asyncio.to_thread(_search, p, principal, channel_id, start, end)
    server = p.gb28181.server
    if server is None:
        raise DeviceError("the GB/T 28181 server is not running")
    zone = start.tzinfo or UTC
    query = manscdp.RecordInfoQuery(
        device_id=route.remote_id,
        sn=server.next_sn(),
        start_time=start.astimezone(zone).replace(tzinfo=None),
        end_time=end.astimezone(zone).replace(tzinfo=None),
    )
    try:
        answer = await p.gb28181.ask(route.device_id, query)
    except LookupError:
        raise DeviceError(f"device {route.device_id} is offline (not registered)") from None
    except TimeoutError:
        raise DeviceError("the device did not answer the recording search") from None
    except DeviceRefused as exc:
        raise DeviceError(f"the device refused the recording search: {exc}") from None
    if not isinstance(answer, manscdp.RecordInfo):
        raise DeviceError("the device answered the recording search with something else")
    items = [
        DeviceRecordView(
            start=_aware(i.start_time, zone),
            end=_aware(i.end_time, zone),
            name=i.name,
            type=i.type,
            file_size=i.file_size,
        )
        for i in answer.items
    ]
    items.sort(key=lambda v: v.start or datetime.min.replace(tzinfo=UTC))
    complete = answer.sum_num is None or len(answer.items) >= answer.sum_num
    return DeviceRecordList(channel_id=channel_id, items=items, complete=complete)


def _zoned(*times: datetime) -> None:
    if any(t.tzinfo is None for t in times):
        raise InvalidInput("times need a zone (ISO 8601 with an offset or Z)")


def _aware(value: datetime | None, zone: object) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=zone)  # type: ignore[arg-type]


def _playback_audit(
    p: Platform, principal: Principal, channel_id: str, body: PlaybackRequest
) -> None:
    principal.require(Permission.VIDEO_PLAYBACK)
    p.channels.get(principal, channel_id)
    _zoned(body.start, body.end)
    if body.end <= body.start or body.end - body.start > timedelta(days=1):
        raise InvalidInput("the range must end after it starts and span at most a day")
    with p.db.transaction() as s:
        p.audit.append(
            s,
            principal,
            "video.playback",
            target=f"channel:{channel_id}",
            detail={
                "where": "device",
                "start": body.start.isoformat(),
                "end": body.end.isoformat(),
                "reason": body.reason,
            },
        )


@router.post(
    "/channels/{channel_id}/device-playback",
    status_code=status.HTTP_201_CREATED,
    summary="Play back a range recorded on the channel's GB/T 28181 device (audited)",
)
async def device_playback(
    request: Request,
    channel_id: ChannelId,
    body: PlaybackRequest,
    p: PlatformDep,
    principal: PrincipalDep,
) -> PlaybackSessionView:
    await asyncio.to_thread(_playback_audit, p, principal, channel_id, body)
    try:
        session = await p.gb28181.streams.open_history(
            channel_id, int(body.start.timestamp()), int(body.end.timestamp())
        )
    except LookupError:
        raise NotFound(f"channel {channel_id} is not a GB/T 28181 channel") from None
    direct = p.media.live_ticket(session.key, principal.username)
    if direct is None:
        return PlaybackSessionView(session=session.key, url=None, expires_at=None)
    host = request.url.hostname or direct.host
    if direct.host not in ("0.0.0.0", "::"):  # noqa: S104 - recognising it, not binding
        host = direct.host
    return PlaybackSessionView(
        session=session.key,
        url=f"ws://{host}:{direct.port}/live/{quote(session.key)}?ticket={direct.ticket}",
        expires_at=datetime.fromtimestamp(direct.expires, UTC),
    )


def _owned(p: Platform, principal: Principal, key: str) -> None:
    principal.require(Permission.VIDEO_PLAYBACK)
    session = p.gb28181.streams.get(key)
    if session is None:
        raise NotFound(f"no playback session {key}")
    p.channels.get(principal, session.channel_id)


SessionKey = Annotated[str, Path(max_length=40)]


@router.post(
    "/device-playback/{session}/control",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Pause, resume, seek or change the speed of a device playback (MANSRTSP)",
)
async def control_playback(
    session: SessionKey, body: ControlRequest, p: PlatformDep, principal: PrincipalDep
) -> None:
    await asyncio.to_thread(_owned, p, principal, session)
    streams = p.gb28181.streams
    try:
        seq = streams.next_rtsp_seq(session)
        if body.action == "pause":
            control = mansrtsp.pause(seq)
        elif body.action == "resume":
            control = mansrtsp.resume(seq)
        elif body.action == "seek":
            control = mansrtsp.seek(seq, body.value if body.value is not None else -1.0)
        else:
            control = mansrtsp.speed(seq, body.value if body.value is not None else 0.0)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    except LookupError:
        raise NotFound(f"no playback session {session}") from None
    try:
        await streams.control(session, control)
    except LookupError:
        raise NotFound(f"no playback session {session}") from None


@router.delete(
    "/device-playback/{session}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End a device playback (BYE)",
)
async def end_playback(session: SessionKey, p: PlatformDep, principal: PrincipalDep) -> None:
    await asyncio.to_thread(_owned, p, principal, session)
    await p.gb28181.streams.close(session, "ended by the viewer")


@router.post(
    "/channels/{channel_id}/device-download",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Download a range recorded on the channel's GB/T 28181 device into an evidence "
    "export (runs as a job; audited with the reason and, when finished, the SHA-256)",
)
async def device_download(
    channel_id: ChannelId, body: DownloadRequest, p: PlatformDep, principal: PrincipalDep
) -> ExportView:
    await asyncio.to_thread(_download_checks, p, principal, channel_id, body)
    downloads = p.gb28181.downloads
    if downloads is None:
        raise DeviceError("the GB/T 28181 server is not running")
    try:
        return await downloads.begin(
            principal, channel_id, body.start, body.end, body.reason, speed=body.speed
        )
    except LookupError:
        raise NotFound(f"channel {channel_id} is not a GB/T 28181 channel") from None


def _download_checks(
    p: Platform, principal: Principal, channel_id: str, body: DownloadRequest
) -> None:
    principal.require(Permission.VIDEO_EXPORT)
    p.channels.get(principal, channel_id)  # scope: PermissionDenied / NotFound
    _zoned(body.start, body.end)
    if body.end <= body.start or body.end - body.start > timedelta(days=1):
        raise InvalidInput("the range must end after it starts and span at most a day")
    if p.gb28181.routes.route(channel_id) is None:
        raise NotFound(f"channel {channel_id} is not a GB/T 28181 channel")
