"""The machinery under every GB/T 28181 media session, live or history: the table of sessions,
opening one by INVITE (port, SSRC, SDP offer and answer, ACK, waiting for video), closing it
with BYE, and what the device (BYE, INFO, a restart) and the media plane (online, offline) say
about it.

``StreamDialogs`` holds it; ``HistoryStreams`` (stream_history.py) and ``GbStreams``
(streams.py, live sessions) build on it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from xueliang.core.aio import on_loop
from xueliang.gb28181 import sdp
from xueliang.gb28181.endpoint import DeviceRefused
from xueliang.gb28181.errors import ParseError
from xueliang.gb28181.server import GbServer
from xueliang.gb28181.sip import SipRequest
from xueliang.gb28181.sip.dialog import Dialog
from xueliang.gb28181.stream_session import (
    ChannelRoute,
    MediaTransport,
    StreamFailed,
    StreamSession,
    StreamView,
)
from xueliang.media.model import DownloadTarget, IngestSpec, MediaEvent, StatusChanged
from xueliang.media.plans import OFF as OFF_PLAN
from xueliang.media.rtp_ports import PortsExhausted, RtpPortAllocator, can_bind
from xueliang.media.service import MediaService

# The logger of streams.py, as before these modules were split from it.
log = logging.getLogger("xueliang.gb28181.streams")

T = TypeVar("T")

SDP_TYPE = "APPLICATION/SDP"
BYE_TIMEOUT = 5.0
BIND_WAIT = 10.0  # seconds a media worker may take to start listening


class StreamDialogs:
    """The sessions of a platform's GB/T 28181 channels, keyed by their media keys, and how each
    is opened (INVITE) and closed (BYE); live and history sessions add what they ask for."""

    def __init__(
        self,
        server: Callable[[], GbServer | None],
        media: MediaService,
        routes: Callable[[str], ChannelRoute | None],
        ports: RtpPortAllocator,
        *,
        bind_host: str,
        sdp_ip: str = "",
        recorded: Callable[[], list[ChannelRoute]] | None = None,
        idle_seconds: float = 30.0,
        invite_timeout: float = 10.0,
        media_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._server = server
        self._media = media
        self._routes = routes
        self._recorded = recorded
        self._ports = ports
        self.bind_host = bind_host
        self.sdp_ip = sdp_ip
        self.idle_seconds = idle_seconds
        self.invite_timeout = invite_timeout
        self.media_timeout = media_timeout
        self._clock = clock
        self._sessions: dict[str, StreamSession] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._seq = itertools.count(1)
        self._history_seq = itertools.count(1)  # history keys (stream_history.py)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reaper: asyncio.Task[None] | None = None
        self.opened = 0
        self.closed = 0
        # Told of every session that ends, with the reason (on the loop, before the BYE).
        self.ended_listeners: list[Callable[[StreamSession, str], None]] = []

    # --- the sessions ------------------------------------------------------------------------

    def sessions(self) -> list[StreamView]:
        return [
            StreamView(
                s.key,
                s.channel_id,
                s.device_id,
                s.kind.value,
                s.transport,
                s.port,
                s.ssrc,
                s.online.is_set(),
                s.start,
                s.stop,
                s.end_of_file,
                s.stream,
            )
            for s in self._sessions.values()
        ]

    def get(self, key: str) -> StreamSession | None:
        return self._sessions.get(key)

    async def _on_loop(self, work: Coroutine[Any, Any, T]) -> T:
        return await on_loop(self._loop, work)

    def touch(self, key: str) -> None:
        session = self._sessions.get(key)
        if session is not None:
            session.touched = self._clock()

    async def close(self, key: str, reason: str = "closed") -> bool:
        return await self._on_loop(self._close(key, reason))

    async def _close(self, key: str, reason: str) -> bool:
        session = self._sessions.get(key)
        if session is None:
            return False
        await self._teardown(session, reason)
        return True

    # --- opening and closing -------------------------------------------------------------------

    async def _open(
        self,
        route: ChannelRoute,
        key: str,
        kind: sdp.SessionType,
        transport: MediaTransport,
        *,
        start: int = 0,
        stop: int = 0,
        speed: int | None = None,
        download: DownloadTarget | None = None,
        stream: int = 0,
    ) -> StreamSession:
        server = self._server()
        if server is None:
            raise StreamFailed("the GB/T 28181 server is not running")
        try:
            to = server.target(route.device_id)
        except LookupError:
            raise StreamFailed(f"device {route.device_id} is offline (not registered)") from None
        try:
            port = self._ports.allocate()
        except PortsExhausted as exc:
            raise StreamFailed(f"no media port free: {exc}") from None
        history = kind is not sdp.SessionType.PLAY
        realm = server.platform_id[3:8]
        ssrc = sdp.make_ssrc(history, realm, next(self._seq) % 10000)
        now = self._clock()
        session = StreamSession(
            key,
            route,
            kind,
            transport,
            port,
            ssrc,
            now,
            now,
            start=start,
            stop=stop,
            to=to,
            download=download,
            stream=stream,
        )
        self._sessions[key] = session
        self.opened += 1
        try:
            await self._negotiate(server, session, speed)
            session.ready = True
        except BaseException as exc:
            reason = str(exc) if isinstance(exc, StreamFailed) else "the request was cancelled"
            await self._teardown(session, reason)
            raise
        return session

    async def _negotiate(self, server: GbServer, session: StreamSession, speed: int | None) -> None:
        to = session.to
        assert to is not None
        route = session.route
        if session.transport != "tcp-active":
            # Listen before asking: a device may connect (or send) before its 200 OK arrives.
            await asyncio.to_thread(self._media.open_session, self._spec(session, None))
            await self._until_bound(session)
        offer = sdp.Offer(
            session_type=session.kind,
            platform_id=server.platform_id,
            address=self.sdp_ip or _local_address(self.bind_host, to.host),
            port=session.port,
            ssrc=session.ssrc,
            channel_id=route.remote_id,
            transport=sdp.Transport.UDP if session.transport == "udp" else sdp.Transport.TCP,
            setup=_setup_of(session.transport),
            start=session.start,
            stop=session.stop,
            download_speed=speed if session.kind is sdp.SessionType.DOWNLOAD else None,
            # Only a stream other than the main one is named: 2016 devices know no streamnumber.
            stream_number=session.stream or None,
        )
        offered = offer.to_session()
        invite = server.make_request(
            "INVITE",
            route.device_id,
            to,
            target_id=route.remote_id,
            body=offered.to_bytes(),
            content_type=SDP_TYPE,
            headers=[("Subject", f"{route.remote_id}:{session.ssrc},{server.platform_id}:0")],
        )
        session.call_id = invite.call_id
        server.on_dialog(invite.call_id, lambda request: self._in_dialog(session, request))
        try:
            response = await asyncio.wait_for(server.send_request(invite, to), self.invite_timeout)
        except TimeoutError:
            raise StreamFailed("the device did not answer the INVITE") from None
        if not response.success:
            raise StreamFailed(
                f"the device refused the INVITE: {response.status} {response.reason}".strip()
            )
        dialog = Dialog.from_response(invite, response)
        session.dialog = dialog
        server.send_ack(dialog.ack(server.via(to)), to)
        try:
            target = sdp.answer_target(offered, sdp.parse(response.body))
        except (ParseError, ValueError) as exc:
            raise StreamFailed(f"the device's SDP answer cannot be read: {exc}") from None
        for warning in target.warnings:
            log.info("GB/T 28181: %s: %s", session.key, warning)
        if target.refused:
            raise StreamFailed("the device refused the stream (SDP port 0)")
        if session.transport == "tcp-active":
            if not target.address or not target.port:
                raise StreamFailed("the device's answer names no address to connect to")
            session.peer = (target.address, target.port)
            await asyncio.to_thread(self._media.open_session, self._spec(session, session.peer))
        try:
            await asyncio.wait_for(session.online.wait(), self.media_timeout)
        except TimeoutError:
            why = session.last_reason or f"nothing arrived on port {session.port}"
            raise StreamFailed(
                f"no video from the device over {session.transport}: {why}",
                retry_tcp=session.transport == "udp",
            ) from None

    async def _until_bound(self, session: StreamSession) -> None:
        """Wait until the media worker holds the session's port (a new worker process takes a
        moment to start): a device that connects at once must find us listening."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BIND_WAIT
        while can_bind(self.bind_host, session.port):
            if loop.time() > deadline:
                raise StreamFailed(f"the media worker did not take port {session.port}")
            await asyncio.sleep(0.02)

    def _spec(self, session: StreamSession, peer: tuple[str, int] | None) -> IngestSpec:
        query = f"transport={session.transport}&ssrc={session.ssrc}"
        if peer is not None:
            query += f"&peer={peer[0]}:{peer[1]}"
        bind = "0.0.0.0" if session.transport == "tcp-active" else self.bind_host  # noqa: S104
        port = 0 if session.transport == "tcp-active" else session.port
        recorded = session.kind is sdp.SessionType.PLAY and session.stream == 0
        return IngestSpec(
            channel_id=session.key,
            url=f"rtp://{_host(bind)}:{port}?{query}",
            plan=session.route.plan if recorded else OFF_PLAN,
            download=session.download,
        )

    async def _teardown(self, session: StreamSession, reason: str, *, bye: bool = True) -> None:
        if session.ended is not None:
            return
        session.ended = reason
        self.closed += 1
        for listener in list(self.ended_listeners):
            listener(session, reason)
        log.info("GB/T 28181: stream %s closed: %s", session.key, reason)
        server = self._server()
        if server is not None and session.call_id is not None:
            server.forget_dialog(session.call_id)
        try:
            await asyncio.to_thread(self._media.close_session, session.key)
        finally:
            self._ports.release(session.port)
            # Listed until its port is back (a new session of the key may have replaced it).
            if self._sessions.get(session.key) is session:
                del self._sessions[session.key]
        if bye and server is not None and session.dialog is not None and session.to is not None:
            request = session.dialog.request("BYE", server.via(session.to))
            try:
                await asyncio.wait_for(server.send_request(request, session.to), BYE_TIMEOUT)
            except (TimeoutError, DeviceRefused, OSError) as exc:
                log.info("GB/T 28181: BYE for %s unanswered: %s", session.key, exc)

    # --- what the device and the media plane say -----------------------------------------------

    def _in_dialog(self, session: StreamSession, request: SipRequest) -> int:
        if request.method == "BYE":
            self._later(self._teardown(session, "the device ended the stream", bye=False))
            return 200
        if request.method == "MESSAGE":
            return 200  # MediaStatus inside the dialog: _on_notify sees it too
        return 200 if request.method == "INFO" else 405

    def _on_presence(self, device_id: str, arrived: bool) -> None:
        """A device that arrives (a restart included: registered anew under a new Call-ID)
        holds none of its earlier media dialogs: end those sessions now rather than after the
        media timeout, so that viewers hear why and a recorded channel is asked for again."""
        if not arrived:
            return
        for session in list(self._sessions.values()):
            if session.device_id == device_id and session.ready:
                self._later(self._teardown(session, "the device restarted", bye=False))

    def _on_media_event(self, event: MediaEvent) -> None:
        """Called on a media reader thread: hand over to the loop."""
        if not isinstance(event, StatusChanged) or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._status, event)

    def _status(self, event: StatusChanged) -> None:
        session = self._sessions.get(event.channel_id)
        if session is None:
            return
        if event.status == "online":
            session.online.set()
            session.offline_since = None
        else:
            session.last_reason = event.reason
            session.online.clear()
            if session.offline_since is None:
                session.offline_since = self._clock()

    def _later(self, work: asyncio.Future[None] | asyncio.Task[None] | object) -> None:
        if self._loop is None or not asyncio.iscoroutine(work):
            return
        task = self._loop.create_task(work)
        task.add_done_callback(_log_failure)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("GB/T 28181: stream task failed", exc_info=task.exception())


def _setup_of(transport: MediaTransport) -> sdp.Setup | None:
    if transport == "tcp-passive":
        return sdp.Setup.PASSIVE  # we listen, the device connects
    if transport == "tcp-active":
        return sdp.Setup.ACTIVE  # we connect to the device
    return None


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _local_address(bind_host: str, peer: str) -> str:
    """The address of ours a device reaches: the bound one, or for a wildcard bind the one the
    routing table picks toward the device (no packet is sent: a UDP connect only routes)."""
    if bind_host not in ("0.0.0.0", "::", ""):  # noqa: S104 - recognising it, not binding
        return bind_host
    family = socket.AF_INET6 if ":" in peer else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((peer, 9))
            return str(probe.getsockname()[0])
    except OSError:
        return "127.0.0.1"
