"""Configuration of GB/T 28181 devices and the snapshots they take and upload (2022 edition).

``POST /devices/{id}/config`` with ``{"channel_id": optional, "type": "BasicParam" |
"OSDConfig" | "PictureMask" | "SnapShotConfig" | "VideoRecordPlan" | "raw", …fields}`` sends a
DeviceConfig to the device (or to one of its channels) and answers 200 with the device's Result.
``raw`` passes any other block through: ``{"type": "raw", "xml": "<FrameMirror>1</FrameMirror>"}``.
It needs ``device.control`` within the caller's area (BasicParam and raw also ``registry.write``)
and every attempt is audited (``device.config``). A device answering ERROR is 422
``device_error``; offline or silent 422 ``device_unreachable``. Reading a configuration is
``POST /devices/{id}/query`` with ``ConfigDownload`` and a ``config_type``.

Snapshots taken by the device (``video.snapshot`` on the channel, audited):

- ``POST /channels/{id}/device-snapshots`` ``{"count", "interval", "upload_base"}`` starts a
  session: the device is sent SnapShotConfig with an upload URL of the platform carrying an
  unguessable token, and a SessionID; answers 201 with the session.
- The device uploads each JPEG with ``POST`` or ``PUT`` to that URL (the body the picture, or
  ``multipart/form-data`` with a file part; the file ID from the file name). No login: the token
  is the credential. Unknown or closed token 404, over the size limit 413, not a JPEG 422,
  a file ID already stored or more files than asked 409.
- The device's ``UploadSnapShotFinished`` MESSAGE (answered 200 by the SIP server) finishes the
  session. ``GET /channels/{id}/device-snapshots`` lists the sessions with their pictures and
  the URL of each, ``GET …/device-snapshots/{session}/{file}`` fetches one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from datetime import datetime, time
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request, status
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field, model_validator
from starlette.datastructures import Headers, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from xueliang.api.deps import PlatformDep, PrincipalDep
from xueliang.api.errors import ERROR_RESPONSES
from xueliang.app import Platform
from xueliang.core.errors import InvalidInput
from xueliang.gb28181 import manscdp
from xueliang.gb28181.config import DeviceConfigService
from xueliang.gb28181.snapshots import MAX_SNAPSHOTS, DeviceSnapshots, SnapshotSession
from xueliang.registry.schemas import _In

router = APIRouter(responses=ERROR_RESPONSES)
DeviceId = Annotated[str, Path(max_length=20, description="20-digit GB/T 28181 ID")]
ChannelId = Annotated[str, Path(max_length=20, description="20-digit GB/T 28181 ID")]
MULTIPART_OVERHEAD = 64 * 1024  # part headers and boundaries beside the picture


# --- the services of the platform's GB/T 28181 role ------------------------------------------


def services(p: Platform) -> tuple[DeviceConfigService, DeviceSnapshots]:
    """The configuration service and the snapshot sessions of ``p``."""
    return p.gb28181.configs, p.gb28181.snapshots


# --- configuration ---------------------------------------------------------------------------

Coordinate = Annotated[int, Field(ge=0, le=100_000)]


class _ConfigIn(_In):
    channel_id: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(
        default=None, description="One of the device's channels; none: the device itself"
    )


class BasicParamIn(_ConfigIn):
    type: Literal["BasicParam"]
    name: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    expiration: Annotated[int, Field(ge=60, le=86_400 * 7)] | None = Field(
        default=None, description="Seconds a registration lasts"
    )
    heartbeat_interval: Annotated[int, Field(ge=5, le=3600)] | None = Field(
        default=None, description="Seconds between keepalives"
    )
    heartbeat_count: Annotated[int, Field(ge=1, le=100)] | None = Field(
        default=None, description="Keepalives missed before the device counts as offline"
    )

    def block(self) -> manscdp.ConfigBlock:
        return manscdp.BasicParam(
            name=self.name,
            expiration=self.expiration,
            heartbeat_interval=self.heartbeat_interval,
            heartbeat_count=self.heartbeat_count,
        )


class OsdTextIn(_In):
    text: Annotated[str, Field(max_length=64)]
    x: Coordinate | None = None
    y: Coordinate | None = None


class OSDConfigIn(_ConfigIn):
    type: Literal["OSDConfig"]
    length: Annotated[int, Field(ge=1, le=100_000)] | None = Field(
        default=None, description="Picture width the positions refer to (pixels)"
    )
    width: Annotated[int, Field(ge=1, le=100_000)] | None = Field(
        default=None, description="Picture height the positions refer to (pixels)"
    )
    time_enable: bool | None = Field(default=None, description="Show the time")
    time_type: Annotated[int, Field(ge=0, le=99)] | None = None
    time_x: Coordinate | None = None
    time_y: Coordinate | None = None
    text_enable: bool | None = Field(default=None, description="Show the texts")
    texts: Annotated[list[OsdTextIn], Field(default_factory=list, max_length=8)]

    def block(self) -> manscdp.ConfigBlock:
        return manscdp.OSDConfig(
            length=self.length,
            width=self.width,
            time_enable=self.time_enable,
            time_type=self.time_type,
            time_x=self.time_x,
            time_y=self.time_y,
            text_enable=self.text_enable,
            texts=tuple(manscdp.OsdText(text=t.text, x=t.x, y=t.y) for t in self.texts),
        )


class MaskRegionIn(_In):
    seq: Annotated[int, Field(ge=1, le=4)]
    left: Coordinate
    top: Coordinate
    right: Coordinate
    bottom: Coordinate

    @model_validator(mode="after")
    def _corners(self) -> MaskRegionIn:
        if self.right < self.left or self.bottom < self.top:
            raise ValueError("right/bottom must not be left of/above left/top")
        return self


class PictureMaskIn(_ConfigIn):
    type: Literal["PictureMask"]
    on: bool
    regions: Annotated[list[MaskRegionIn], Field(default_factory=list, max_length=4)]

    def block(self) -> manscdp.ConfigBlock:
        return manscdp.PictureMask(
            on=self.on,
            regions=tuple(
                manscdp.MaskRegion(
                    seq=r.seq, left=r.left, top=r.top, right=r.right, bottom=r.bottom
                )
                for r in self.regions
            ),
        )


class SnapShotConfigIn(_ConfigIn):
    type: Literal["SnapShotConfig"]
    snap_num: Annotated[int, Field(ge=1, le=MAX_SNAPSHOTS)]
    interval: Annotated[int, Field(ge=1, le=60)]
    upload_url: Annotated[str, Field(max_length=512, pattern=r"^(?i:https?|ftp)://\S+$")]
    session_id: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\w.\-]+$")]

    def block(self) -> manscdp.ConfigBlock:
        return manscdp.SnapShotConfig(
            snap_num=self.snap_num,
            interval=self.interval,
            upload_url=self.upload_url,
            session_id=self.session_id,
        )


class TimeSegmentIn(_In):
    start: time
    stop: time

    @model_validator(mode="after")
    def _order(self) -> TimeSegmentIn:
        if self.stop <= self.start:
            raise ValueError("a time segment must stop after it starts")
        if self.start.microsecond or self.stop.microsecond or self.start.tzinfo or self.stop.tzinfo:
            raise ValueError("times of a schedule are whole seconds of local time")
        return self


class RecordScheduleIn(_In):
    week_day: Annotated[int, Field(ge=1, le=7, description="1 Monday … 7 Sunday")]
    segments: Annotated[list[TimeSegmentIn], Field(default_factory=list, max_length=8)]


class VideoRecordPlanIn(_ConfigIn):
    type: Literal["VideoRecordPlan"]
    record_enable: bool
    schedules: Annotated[list[RecordScheduleIn], Field(default_factory=list, max_length=7)]
    stream_number: Annotated[int, Field(ge=0, le=9)] | None = Field(
        default=None, description="0 main stream, 1 sub stream, …"
    )

    def block(self) -> manscdp.ConfigBlock:
        return manscdp.VideoRecordPlan(
            record_enable=self.record_enable,
            schedules=tuple(
                manscdp.RecordSchedule(
                    week_day=s.week_day,
                    segments=tuple(
                        manscdp.TimeSegment(start=g.start, stop=g.stop) for g in s.segments
                    ),
                )
                for s in self.schedules
            ),
            stream_number=self.stream_number,
        )


class RawConfigIn(_ConfigIn):
    type: Literal["raw"]
    xml: Annotated[str, Field(min_length=3, max_length=64 * 1024)] = Field(
        description="One configuration element, e.g. <FrameMirror>1</FrameMirror>"
    )

    def block(self) -> manscdp.ConfigBlock:
        try:
            element = manscdp.element_from_xml(self.xml)
        except ValueError as exc:
            raise InvalidInput(f"the configuration block is not valid XML: {exc}") from None
        if element.tag in ("CmdType", "SN", "DeviceID"):
            raise InvalidInput(f"<{element.tag}> is part of the message, not a configuration")
        return manscdp.RawConfig(tag=element.tag, xml=self.xml.strip())


ConfigBody = Annotated[
    BasicParamIn | OSDConfigIn | PictureMaskIn | SnapShotConfigIn | VideoRecordPlanIn | RawConfigIn,
    Field(discriminator="type"),
]


class ConfigOut(BaseModel):
    device_id: str
    channel_id: str | None
    type: str = Field(description="The configuration type sent (raw for a block passed through)")
    tag: str = Field(description="The element sent")
    result: str = Field(description="What the device answered (OK)")


@router.post(
    "/devices/{device_id}/config",
    response_model=ConfigOut,
    tags=["devices"],
    summary="Set a GB/T 28181 device's configuration (DeviceConfig: OSD, mask, …; audited)",
)
async def configure(
    device_id: DeviceId, body: ConfigBody, p: PlatformDep, principal: PrincipalDep
) -> ConfigOut:
    configs, _ = services(p)
    done = await configs.configure(principal, device_id, body.block(), body.channel_id)
    return ConfigOut(
        device_id=done.device_id,
        channel_id=done.channel_id,
        type=done.type,
        tag=done.tag,
        result=done.result,
    )


# --- snapshots taken by devices --------------------------------------------------------------


class SnapshotStart(_In):
    count: Annotated[int, Field(ge=1, le=MAX_SNAPSHOTS)] = 1
    interval: Annotated[int, Field(ge=1, le=60, description="Seconds between pictures")] = 1
    upload_base: (
        Annotated[str, Field(max_length=256, pattern=r"^(?i:https?)://[^\s/?#]+(/\S*)?$")] | None
    ) = Field(
        default=None,
        description="The platform's HTTP root as the device reaches it; the address this "
        "request came to if absent",
    )


class DeviceSnapshotView(BaseModel):
    file_id: str
    size: int
    sha256: str
    received_at: datetime
    url: str = Field(description="Fetch the JPEG here (with the same authorisation)")


class SnapshotSessionView(BaseModel):
    session_id: str
    channel_id: str
    status: str = Field(description="running, done, incomplete, timed_out or failed")
    count: int
    interval: int
    started_at: datetime
    finished_at: datetime | None
    reported: list[str] | None = Field(description="File IDs the device reported; null: not yet")
    error: str | None
    snapshots: list[DeviceSnapshotView]


def _view(session: SnapshotSession) -> SnapshotSessionView:
    base = f"/api/v1/channels/{session.channel_id}/device-snapshots/{session.session_id}"
    return SnapshotSessionView(
        session_id=session.session_id,
        channel_id=session.channel_id,
        status=session.status,
        count=session.count,
        interval=session.interval,
        started_at=session.started_at,
        finished_at=session.finished_at,
        reported=list(session.reported) if session.reported is not None else None,
        error=session.error,
        snapshots=[
            DeviceSnapshotView(
                file_id=f.file_id,
                size=f.size,
                sha256=f.sha256,
                received_at=f.received_at,
                url=f"{base}/{f.file_id}",
            )
            for f in session.files
        ],
    )


@router.post(
    "/channels/{channel_id}/device-snapshots",
    status_code=status.HTTP_201_CREATED,
    response_model=SnapshotSessionView,
    tags=["media"],
    summary="Have the channel's GB/T 28181-2022 device take and upload snapshots (audited)",
)
async def start_snapshots(
    request: Request,
    channel_id: ChannelId,
    body: SnapshotStart,
    p: PlatformDep,
    principal: PrincipalDep,
) -> SnapshotSessionView:
    _, snapshots = services(p)
    base = body.upload_base or str(request.base_url)
    session = await snapshots.start(principal, channel_id, body.count, body.interval, base)
    return _view(session)


@router.get(
    "/channels/{channel_id}/device-snapshots",
    response_model=list[SnapshotSessionView],
    tags=["media"],
    summary="Snapshot sessions of the channel with the pictures its device uploaded (audited)",
)
async def list_snapshots(
    channel_id: ChannelId, p: PlatformDep, principal: PrincipalDep
) -> list[SnapshotSessionView]:
    _, snapshots = services(p)
    found = await asyncio.to_thread(snapshots.sessions, principal, channel_id)
    return [_view(s) for s in found]


@router.get(
    "/channels/{channel_id}/device-snapshots/{session_id}/{file_id}",
    tags=["media"],
    summary="One picture the channel's device uploaded (audited)",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}}},
)
async def fetch_snapshot(
    channel_id: ChannelId,
    session_id: Annotated[str, Path(max_length=64)],
    file_id: Annotated[str, Path(max_length=64)],
    p: PlatformDep,
    principal: PrincipalDep,
) -> FileResponse:
    _, snapshots = services(p)
    path = await asyncio.to_thread(snapshots.open_file, principal, channel_id, session_id, file_id)
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


class UploadOut(BaseModel):
    session_id: str
    file_id: str
    size: int


async def _read_body(request: Request, cap: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise HTTPException(413, f"the upload of {declared} bytes is over the {cap} byte limit")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:
            raise HTTPException(413, f"the upload is over the {cap} byte limit")
    return bytes(body)


async def _multipart(headers: Headers, body: bytes) -> tuple[bytes, str | None, str | None]:
    """(picture, file name, SessionID field) of a multipart/form-data upload."""

    async def stream() -> AsyncGenerator[bytes, None]:
        yield body

    try:
        form = await MultiPartParser(headers, stream(), max_files=4, max_fields=16).parse()
    except MultiPartException as exc:
        raise InvalidInput(f"the multipart upload cannot be read: {exc.message}") from None
    try:
        session_field = form.get("SessionID") or form.get("sessionid")
        for _key, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read()
                return (
                    data,
                    value.filename,
                    session_field if isinstance(session_field, str) else None,
                )
    finally:
        await form.close()
    raise InvalidInput("the multipart upload carries no file part")


def _disposition_name(headers: Headers) -> str | None:
    value = headers.get("content-disposition", "")
    for part in value.split(";"):
        key, _, name = part.strip().partition("=")
        if key.lower() == "filename" and name:
            return name.strip().strip('"')
    return None


async def _upload(p: Platform, request: Request, token: str, name: str | None) -> UploadOut:
    _, snapshots = services(p)
    session = snapshots.session_for_upload(token)  # 404 before a byte of the body is read
    multipart = request.headers.get("content-type", "").lower().startswith("multipart/form-data")
    limit = snapshots.max_bytes
    body = await _read_body(request, limit + (MULTIPART_OVERHEAD if multipart else 0))
    data = body
    if multipart:
        data, filename, session_field = await _multipart(request.headers, body)
        if session_field and session_field.strip() != session.session_id:
            raise InvalidInput("the upload names another SessionID than its address")
        name = name or filename
    if len(data) > limit:
        raise HTTPException(413, f"the picture is over the {limit} byte limit")
    name = (
        name
        or request.query_params.get("name")
        or request.query_params.get("filename")
        or _disposition_name(request.headers)
    )
    stored = await asyncio.to_thread(snapshots.store, token, name, data)
    return UploadOut(session_id=session.session_id, file_id=stored.file_id, size=stored.size)


UploadToken = Annotated[str, Path(min_length=1, max_length=128)]


@router.api_route(
    "/device-snapshots/upload/{token}",
    methods=["POST", "PUT"],
    response_model=UploadOut,
    tags=["media"],
    summary="Where a device uploads the pictures of a snapshot session (the token authorises)",
)
async def upload(token: UploadToken, request: Request, p: PlatformDep) -> UploadOut:
    return await _upload(p, request, token, None)


@router.api_route(
    "/device-snapshots/upload/{token}/{name}",
    methods=["POST", "PUT"],
    response_model=UploadOut,
    tags=["media"],
    summary="Upload of a snapshot under its file name (the token authorises)",
)
async def upload_named(
    token: UploadToken,
    name: Annotated[str, Path(max_length=128)],
    request: Request,
    p: PlatformDep,
) -> UploadOut:
    return await _upload(p, request, token, name)
