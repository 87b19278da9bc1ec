"""Live view over WebSocket: fragmented MP4 for Media Source Extensions.

Protocol on ``/api/v1/channels/{id}/live?token=…`` (browsers cannot set headers on a WebSocket,
so the bearer token travels as a query parameter):

- text ``{"type": "init", "codec": "avc1.640028", "mime": "video/mp4; codecs=\\"…\\""}``,
  then the init segment as one binary message (again whenever the camera's stream restarts);
- one binary message per frame (moof+mdat), starting on a key frame;
- text ``{"type": "error"|"closed", "message": …}`` before the server closes.

Close codes: 4401 not authenticated, 4403 forbidden or outside the caller's area, 4404 no such
channel or no live source.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request, Response, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, Field

from xueliang.access.permissions import Permission
from xueliang.access.principal import Principal
from xueliang.api.deps import PlatformDep, PrincipalDep, client_source
from xueliang.api.deps import platform as platform_of
from xueliang.api.errors import ERROR_RESPONSES
from xueliang.app import Platform
from xueliang.core.errors import AuthenticationFailed, NotFound, PermissionDenied
from xueliang.gb28181.stream_session import StreamFailed
from xueliang.gb28181.streams import stream_key
from xueliang.media.live import Closed, Fragment, InitMessage

router = APIRouter(tags=["media"], responses=ERROR_RESPONSES)


def _admit(p: Platform, token: str, channel_id: str, source: str) -> Principal:
    principal = p.auth.authenticate(token, source=source)
    principal.require(Permission.VIDEO_LIVE)
    p.channels.get(principal, channel_id)  # scope check: raises PermissionDenied / NotFound
    with p.db.transaction() as s:
        p.audit.append(s, principal, "video.live", target=f"channel:{channel_id}")
    return principal


StreamChoice = Literal["main", "sub"]
STREAM_NUMBERS: dict[str, int] = {"main": 0, "sub": 1}
StreamQuery = Annotated[
    StreamChoice,
    Query(
        description="main (the recorded stream) or sub (a GB/T 28181 device's sub stream, "
        "a=streamnumber:1: for walls of many tiles); channels without one get the main stream"
    ),
]


class LiveTicketView(BaseModel):
    """How to watch a channel live: straight from its media worker when ``url`` is given (a
    single-use ticket, valid until ``expires_at``), otherwise (or when that fails) through the
    platform's relay at ``relay_url`` with ``?token=``."""

    url: str | None
    expires_at: datetime | None
    relay_url: str
    stream: StreamChoice = Field(default="main", description="The stream these URLs serve")


def _public_host(p: Platform, request: Request, bound: str) -> str:
    host = p.settings.media.live_public_host
    if not host:
        wildcard = bound in ("0.0.0.0", "::")  # noqa: S104 - recognising it, not binding
        host = (request.url.hostname or "127.0.0.1") if wildcard else bound
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


@router.post(
    "/channels/{channel_id}/live/ticket",
    summary="A ticket to watch the channel live straight from its media worker (audited)",
)
async def live_ticket(
    request: Request,
    channel_id: str,
    p: PlatformDep,
    principal: PrincipalDep,
    stream: StreamQuery = "main",
) -> LiveTicketView:
    principal.require(Permission.VIDEO_LIVE)
    # Scope check: raises PermissionDenied / NotFound.
    await asyncio.to_thread(p.channels.get, principal, channel_id)
    key = await ensure_live_source(p, channel_id, STREAM_NUMBERS[stream])
    return await asyncio.to_thread(_ticket, request, channel_id, key, p, principal)


async def ensure_live_source(p: Platform, channel_id: str, stream: int = 0) -> str:
    """Make sure the channel's ``stream`` is pulled: a GB/T 28181 channel's stream is asked for
    now (StreamFailed says which step failed); NotFound when it has no live source at all.
    Returns the media key to watch: the channel's for the main stream, and for a channel
    whose device has no other streams to ask for (an RTSP camera)."""
    key = stream_key(channel_id, stream)
    if p.media.is_pulled(key):
        p.gb28181.streams.touch(key)
        return key
    try:
        return (await p.gb28181.streams.play(channel_id, stream=stream)).key
    except LookupError:
        if stream != 0 and p.media.is_pulled(channel_id):
            return channel_id  # pulled by the platform (RTSP): its one stream
        raise NotFound(f"channel {channel_id} has no live source") from None


def _ticket(
    request: Request, channel_id: str, key: str, p: Platform, principal: Principal
) -> LiveTicketView:
    stream: StreamChoice = "main" if key == channel_id else "sub"
    relay = f"/api/v1/channels/{quote(channel_id)}/live" + (
        "?stream=sub" if stream == "sub" else ""
    )
    # Workers speak plain ws://: a page served over HTTPS may not open it (mixed content).
    secure = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
    direct = None if secure else p.media.live_ticket(key, principal.username)
    with p.db.transaction() as s:
        p.audit.append(
            s,
            principal,
            "video.live",
            target=f"channel:{channel_id}",
            detail={"via": "direct" if direct else "relay", "stream": stream},
        )
    if direct is None:
        return LiveTicketView(url=None, expires_at=None, relay_url=relay, stream=stream)
    host = _public_host(p, request, direct.host)
    return LiveTicketView(
        url=f"ws://{host}:{direct.port}{direct.path}?ticket={direct.ticket}",
        expires_at=datetime.fromtimestamp(direct.expires, UTC),
        relay_url=relay,
        stream=stream,
    )


@router.websocket("/channels/{channel_id}/live")
async def live(
    websocket: WebSocket,
    channel_id: str,
    token: Annotated[str, Query(max_length=256)] = "",
    stream: StreamQuery = "main",
) -> None:
    p = platform_of(websocket)
    source = websocket.client.host if websocket.client else ""
    try:
        await asyncio.to_thread(_admit, p, token, channel_id, source)
    except AuthenticationFailed:
        await websocket.close(code=4401, reason="not authenticated")
        return
    except PermissionDenied:
        await websocket.close(code=4403, reason="forbidden")
        return
    except NotFound:
        await websocket.close(code=4404, reason="no such channel")
        return
    await websocket.accept()
    try:
        key = await ensure_live_source(p, channel_id, STREAM_NUMBERS[stream])
    except (NotFound, StreamFailed) as exc:
        await websocket.send_text(json.dumps({"type": "error", "message": str(exc)}))
        await websocket.close(code=4404)
        return
    try:
        viewer = await p.live.join(key)
    except LookupError as exc:
        await websocket.send_text(json.dumps({"type": "error", "message": str(exc)}))
        await websocket.close(code=4404)
        return

    async def pump() -> None:
        while True:
            item = await viewer.queue.get()
            if isinstance(item, InitMessage):
                await websocket.send_text(
                    json.dumps({"type": "init", "codec": item.codec, "mime": item.mime})
                )
                await websocket.send_bytes(item.segment)
            elif isinstance(item, Fragment):
                await websocket.send_bytes(item.data)
            elif isinstance(item, Closed):
                await websocket.send_text(json.dumps({"type": "closed", "message": item.reason}))
                await websocket.close(code=1011)
                return

    async def watch() -> None:
        # Notice a viewer that leaves even while no frame flows (a camera that went silent).
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass

    tasks = {asyncio.create_task(pump()), asyncio.create_task(watch())}
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for task in done:
            failure = task.exception()
            if failure is not None and not isinstance(failure, WebSocketDisconnect | RuntimeError):
                raise failure
    finally:
        await p.live.leave(viewer)


# --- HLS: the fallback for players without WebSocket + MSE -------------------------------------
# The token may come as ?token= (HLS players fetch the playlist, init and segments by URL, and the
# playlist's URLs carry the same query) or as a bearer header.

_HLS = "application/vnd.apple.mpegurl"


def _hls_admit(p: Platform, request: Request, token: str, channel_id: str, audit: bool) -> None:
    bearer = request.headers.get("authorization", "")
    credential = token or bearer.removeprefix("Bearer ").strip()
    if not credential:
        raise AuthenticationFailed("a token is required (?token= or a bearer header)")
    principal = p.auth.authenticate(credential, source=client_source(request))
    principal.require(Permission.VIDEO_LIVE)
    p.channels.get(principal, channel_id)
    if audit:
        with p.db.transaction() as s:
            p.audit.append(
                s, principal, "video.live", target=f"channel:{channel_id}", detail={"via": "hls"}
            )


async def _hls_call(request: Request, channel_id: str, token: str, audit: bool) -> Platform:
    p = platform_of(request)
    await asyncio.to_thread(_hls_admit, p, request, token, channel_id, audit)
    return p


@router.get(
    "/channels/{channel_id}/live.m3u8",
    summary="Live view as HLS (fMP4 segments of one GOP each); the fallback to the WebSocket",
    response_class=Response,
    responses={200: {"content": {_HLS: {}}}},
)
async def hls_playlist(
    request: Request, channel_id: str, token: Annotated[str, Query(max_length=256)] = ""
) -> Response:
    # The playlist is fetched again every few seconds; audit once per playlist fetch would flood
    # the log, so only a fetch that (re)starts the channel's live session is audited.
    starting = platform_of(request).live.viewer_count(channel_id) == 0 and not platform_of(
        request
    ).live.hls_active(channel_id)
    p = await _hls_call(request, channel_id, token, audit=starting)
    await ensure_live_source(p, channel_id)
    try:
        body = await p.live.hls_playlist(channel_id, f"token={token}" if token else "")
    except LookupError as exc:
        raise NotFound(str(exc)) from None
    return Response(body, media_type=_HLS, headers={"Cache-Control": "no-cache"})


@router.get("/channels/{channel_id}/live/init.mp4", include_in_schema=False)
async def hls_init(
    request: Request, channel_id: str, token: Annotated[str, Query(max_length=256)] = ""
) -> Response:
    p = await _hls_call(request, channel_id, token, audit=False)
    try:
        return Response(await p.live.hls_init(channel_id), media_type="video/mp4")
    except LookupError as exc:
        raise NotFound(str(exc)) from None


@router.get("/channels/{channel_id}/live/{seq}.m4s", include_in_schema=False)
async def hls_segment(
    request: Request,
    channel_id: str,
    seq: Annotated[int, Path(ge=0, le=2**62)],
    token: Annotated[str, Query(max_length=256)] = "",
) -> Response:
    p = await _hls_call(request, channel_id, token, audit=False)
    try:
        return Response(await p.live.hls_segment(channel_id, seq), media_type="video/mp4")
    except LookupError as exc:
        raise NotFound(str(exc)) from None
