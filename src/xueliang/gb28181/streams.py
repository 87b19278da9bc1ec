"""Video from GB/T 28181 devices, on demand: INVITE, media into the stream hub, BYE.

A GB channel is not pulled like an RTSP camera: the platform asks the device to send (INVITE
with an SDP offer naming a port of ours), the device answers with its own SDP, and PS over RTP
arrives on that port (UDP, TCP with the device connecting: "tcp-passive", or TCP with us
connecting: "tcp-active"). The stream then enters a media worker as an ``rtp://`` source
(media/sources/gb_rtp.py), so recording, live view and snapshots work as for any channel.

One live session per channel serves every viewer and the recorder. It is opened by the first
viewer (``play``) or because the channel's recording plan records on the platform, and closed
with BYE when it has had no viewer for ``idle_seconds`` and the plan does not record. A session
that fails says which step failed, in words for the operator: the device is not registered,
refused the INVITE (and with which status), answered port 0, or sent no video to our port. UDP
that brings nothing is tried once more over TCP (the device connecting to us), since lost or
blocked UDP is the commonest reason a stream never arrives.

Device-side recordings are played the same way (``open_history``) under a key of their own, so
several viewers can each play a different range; MANSRTSP over INFO steers them (``control``)
and the device's MediaStatus 121 (end of file) ends them.

Ports come from an allocator and go back at teardown; SSRCs are made from the platform's realm
and a sequence; both are released on every path out (tested under churn).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import socket
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from xueliang.core.aio import on_loop
from xueliang.core.errors import DeviceError
from xueliang.gb28181 import manscdp, mansrtsp, sdp
from xueliang.gb28181.endpoint import DeviceRefused
from xueliang.gb28181.errors import ParseError
from xueliang.gb28181.registrar import Address
from xueliang.gb28181.server import GbServer
from xueliang.gb28181.sip import SipRequest
from xueliang.gb28181.sip.dialog import Dialog
from xueliang.media.model import DownloadTarget, IngestSpec, MediaEvent, StatusChanged
from xueliang.media.plans import OFF as OFF_PLAN
from xueliang.media.plans import RecordingPlan
from xueliang.media.rtp_ports import PortsExhausted, RtpPortAllocator, can_bind
from xueliang.media.service import MediaService

log = logging.getLogger(__name__)

T = TypeVar("T")

MediaTransport = Literal["udp", "tcp-passive", "tcp-active"]
MEDIA_TRANSPORTS: tuple[MediaTransport, ...] = ("udp", "tcp-passive", "tcp-active")
SDP_TYPE = "APPLICATION/SDP"
REAP_SECONDS = 2.0
BYE_TIMEOUT = 5.0
BIND_WAIT = 10.0  # seconds a media worker may take to start listening


SUB_MARK = "@"  # the media key of a channel's stream n > 0: "<channel>@<n>"
MAX_STREAM_NUMBER = 9


def stream_key(channel_id: str, stream: int = 0) -> str:
    """The media plane's key for a channel's live stream: the channel ID for the main stream
    (the one recorded), ``<channel>@<n>`` for stream n (1: the sub stream)."""
    return channel_id if stream == 0 else f"{channel_id}{SUB_MARK}{stream}"


class StreamFailed(DeviceError):
    """A stream from a GB/T 28181 device could not be had; the message says which step failed."""

    code = "stream_failed"

    def __init__(self, message: str, *, retry_tcp: bool = False) -> None:
        super().__init__(message)
        self.retry_tcp = retry_tcp


@dataclass(frozen=True, slots=True)
class ChannelRoute:
    """What the register says of a GB channel: which device serves it and how."""

    channel_id: str
    device_id: str
    remote_id: str  # the ID the device uses for the channel (the Request-URI of the INVITE)
    transport: MediaTransport
    plan: RecordingPlan  # what the recorder does with the stream
    records: bool  # the plan records on the platform: keep the stream up


@dataclass(eq=False)
class StreamSession:
    key: str  # the media plane's stream key: the channel ID, or channel~n for history
    route: ChannelRoute
    kind: sdp.SessionType
    transport: MediaTransport
    port: int
    ssrc: str
    opened_at: float
    touched: float
    start: int = 0  # Unix seconds, history only
    stop: int = 0
    call_id: str | None = None
    dialog: Dialog | None = None
    to: Address | None = None
    online: asyncio.Event = field(default_factory=asyncio.Event)
    last_reason: str | None = None
    ended: str | None = None
    end_of_file: bool = False
    rtsp_seq: int = 0
    peer: tuple[str, int] | None = None  # tcp-active: where we connect
    ready: bool = False  # negotiated and video arrived: from now on the reaper looks at it
    offline_since: float | None = None  # video stopped arriving (the ingest says why)
    download: DownloadTarget | None = None  # a Download: the file the stream goes into
    stream: int = 0  # 2022's a=streamnumber: 0 main stream (recorded), 1 sub stream, …

    @property
    def channel_id(self) -> str:
        return self.route.channel_id

    @property
    def device_id(self) -> str:
        return self.route.device_id


@dataclass(frozen=True, slots=True)
class StreamView:
    key: str
    channel_id: str
    device_id: str
    kind: str
    transport: str
    port: int
    ssrc: str
    online: bool
    start: int
    stop: int
    end_of_file: bool
    stream: int = 0


class GbStreams:
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
        self._history_seq = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reaper: asyncio.Task[None] | None = None
        self.opened = 0
        self.closed = 0
        # Told of every session that ends, with the reason (on the loop, before the BYE).
        self.ended_listeners: list[Callable[[StreamSession, str], None]] = []

    # --- life ----------------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._media.listeners.append(self._on_media_event)
        server = self._server()
        if server is not None:
            server.notify_listeners.append(self._on_notify)
            server.presence_listeners.append(self._on_presence)
        self._reaper = self._loop.create_task(self._reap_forever())

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        for session in list(self._sessions.values()):
            await self._teardown(session, "the platform is stopping")
        if self._on_media_event in self._media.listeners:
            self._media.listeners.remove(self._on_media_event)

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

    # --- live ----------------------------------------------------------------------------------

    async def play(
        self, channel_id: str, transport: MediaTransport | None = None, *, stream: int = 0
    ) -> StreamSession:
        """The channel's live session of ``stream`` (0 main, 1 sub, …), opened if need be
        (then video is flowing when this returns); its ``key`` is what the media plane calls
        it. StreamFailed says why not; LookupError when it is no GB channel."""
        if not 0 <= stream <= MAX_STREAM_NUMBER:
            raise StreamFailed(f"stream number {stream} is out of 0 … {MAX_STREAM_NUMBER}")
        return await self._on_loop(self._play(channel_id, transport, stream))

    async def _on_loop(self, work: Coroutine[Any, Any, T]) -> T:
        return await on_loop(self._loop, work)

    async def _play(
        self, channel_id: str, transport: MediaTransport | None, stream: int
    ) -> StreamSession:
        route = await asyncio.to_thread(self._routes, channel_id)
        if route is None:
            raise LookupError(f"channel {channel_id} is not a GB/T 28181 channel")
        key = stream_key(channel_id, stream)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            session = self._sessions.get(key)
            if session is not None and session.ended is None:
                session.touched = self._clock()
                return session
            first = transport or route.transport
            live = sdp.SessionType.PLAY
            try:
                return await self._open(route, key, live, first, stream=stream)
            except StreamFailed as exc:
                if first != "udp" or not exc.retry_tcp:
                    raise
                log.info("GB/T 28181: %s over UDP: %s; trying TCP", key, exc)
                try:
                    return await self._open(route, key, live, "tcp-passive", stream=stream)
                except StreamFailed as again:
                    raise StreamFailed(f"{exc}; over TCP too: {again}") from again

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

    # --- device-side recordings ----------------------------------------------------------------

    async def open_history(
        self,
        channel_id: str,
        start: int,
        stop: int,
        *,
        download: DownloadTarget | None = None,
        speed: int | None = None,
        transport: MediaTransport | None = None,
    ) -> StreamSession:
        """Play the device's recording of ``start``..``stop`` (Unix seconds) as a stream of its
        own key, or download it at ``speed`` into the ``download`` file."""
        return await self._on_loop(
            self._open_history(channel_id, start, stop, download, speed, transport)
        )

    async def _open_history(
        self,
        channel_id: str,
        start: int,
        stop: int,
        download: DownloadTarget | None,
        speed: int | None,
        transport: MediaTransport | None,
    ) -> StreamSession:
        if stop <= start:
            raise StreamFailed("the range to play back ends before it starts")
        route = await asyncio.to_thread(self._routes, channel_id)
        if route is None:
            raise LookupError(f"channel {channel_id} is not a GB/T 28181 channel")
        key = f"{channel_id}~{next(self._history_seq)}"
        kind = sdp.SessionType.DOWNLOAD if download is not None else sdp.SessionType.PLAYBACK
        first = transport or route.transport
        try:
            return await self._open(
                route, key, kind, first, start=start, stop=stop, speed=speed, download=download
            )
        except StreamFailed as exc:
            if first != "udp" or not exc.retry_tcp:
                raise
            return await self._open(
                route,
                key,
                kind,
                "tcp-passive",
                start=start,
                stop=stop,
                speed=speed,
                download=download,
            )

    async def control(self, key: str, request: mansrtsp.Control) -> None:
        """Send a MANSRTSP request (pause, resume, seek, speed) in the session's dialog."""
        await self._on_loop(self._control(key, request))

    async def _control(self, key: str, request: mansrtsp.Control) -> None:
        session = self._sessions.get(key)
        server = self._server()
        if session is None or session.dialog is None or session.to is None or server is None:
            raise LookupError(f"no playback session {key}")
        if session.kind is sdp.SessionType.PLAY:
            raise StreamFailed("live video cannot be paused, sought or sped up")
        info = session.dialog.request(
            "INFO",
            server.via(session.to),
            body=request.to_bytes(),
            content_type=mansrtsp.CONTENT_TYPE,
        )
        try:
            response = await asyncio.wait_for(
                server.send_request(info, session.to), self.invite_timeout
            )
        except TimeoutError:
            raise StreamFailed("the device did not answer the playback control") from None
        if not response.success:
            raise StreamFailed(
                f"the device refused the playback control: {response.status} {response.reason}"
            )
        session.touched = self._clock()

    def next_rtsp_seq(self, key: str) -> int:
        session = self._sessions.get(key)
        if session is None:
            raise LookupError(f"no playback session {key}")
        session.rtsp_seq += 1
        return session.rtsp_seq

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

    def _on_notify(self, sender: str, message: manscdp.Message, request: SipRequest) -> None:
        if not isinstance(message, manscdp.MediaStatus) or not message.end_of_file:
            return
        session = self._history_session(sender, message.device_id, request.call_id)
        if session is None:
            log.info("GB/T 28181: end of file from %s matches no playback", sender)
            return
        session.end_of_file = True
        # What is in flight still arrives; then the session ends (the device expects a BYE).
        loop = self._loop
        if loop is not None:
            loop.call_later(
                2.0, lambda: self._later(self._teardown(session, "the recording ended"))
            )

    def _history_session(self, sender: str, named: str, call_id: str) -> StreamSession | None:
        """The session a MediaStatus is about: by Call-ID when the device sent it in the
        dialog, else the device's one playback of the channel it names (devices differ)."""
        for session in self._sessions.values():
            if session.call_id == call_id:
                return session
        candidates = [
            s
            for s in self._sessions.values()
            if s.kind is not sdp.SessionType.PLAY
            and s.device_id == sender
            and named in (s.channel_id, s.route.remote_id, sender)
            and not s.end_of_file
        ]
        return min(candidates, key=lambda s: s.opened_at) if candidates else None

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

    # --- reaping idle sessions, keeping recorded ones up --------------------------------------

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(REAP_SECONDS)
            try:
                await self.reap()
            except Exception:
                log.exception("GB/T 28181: checking streams failed")

    async def reap(self) -> None:
        """Close live sessions nobody watches (and whose plan does not record) and history
        sessions left idle; apply plan changes to live sessions; open sessions for channels
        whose plan records."""
        recorded: dict[str, ChannelRoute] = {}
        if self._recorded is not None and self._media.started:
            recorded = {r.channel_id: r for r in await asyncio.to_thread(self._recorded)}
        for session in list(self._sessions.values()):
            main = session.kind is sdp.SessionType.PLAY and session.stream == 0
            if main and session.ended is None:
                await self._replan(session, recorded.get(session.channel_id))
        now = self._clock()
        for session in list(self._sessions.values()):
            lost = session.offline_since
            if session.ready and lost is not None and now - lost > self.media_timeout:
                # The device stopped sending (went away, rebooted, dropped the call): end the
                # session, so viewers hear why and the next one (or the plan) asks again.
                await self._teardown(session, f"no video from the device: {session.last_reason}")
        idle = [
            s for s in self._sessions.values() if s.ready and now - s.touched >= self.idle_seconds
        ]
        stats = await asyncio.to_thread(self._media.stats) if idle else {}
        for session in idle:
            channel = stats.get(session.key)
            watched = channel is not None and channel.consumers > 1
            main = session.kind is sdp.SessionType.PLAY and session.stream == 0
            if watched or (main and session.route.records):
                continue
            if session.download is not None:
                continue  # a download runs until the device is done (or stops sending)
            await self._teardown(session, "nobody watches")
        server = self._server()
        for route in recorded.values():
            if route.channel_id in self._sessions:
                continue
            if server is None or route.device_id not in server.registrar:
                continue
            try:
                await self.play(route.channel_id)
            except (StreamFailed, LookupError) as exc:
                log.info("GB/T 28181: recording %s: %s", route.channel_id, exc)

    async def _replan(self, session: StreamSession, recording: ChannelRoute | None) -> None:
        """A live session follows its channel's recording plan as it changes (the worker
        applies a new plan without reconnecting)."""
        plan = recording.plan if recording is not None else OFF_PLAN
        if plan == session.route.plan:
            return
        session.route = dataclasses.replace(session.route, plan=plan, records=recording is not None)
        if session.transport == "tcp-active" and session.peer is None:
            return  # not yet streaming: opened with the new plan
        await asyncio.to_thread(self._media.open_session, self._spec(session, session.peer))


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
