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

This module holds the live sessions, the reaper and the service's life; history sessions are in
stream_history.py, the INVITE/BYE machinery both stand on in stream_dialogs.py, and the session
types in stream_session.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from xueliang.gb28181 import sdp
from xueliang.gb28181.stream_history import HistoryStreams
from xueliang.gb28181.stream_session import (
    ChannelRoute,
    MediaTransport,
    StreamFailed,
    StreamSession,
)
from xueliang.media.plans import OFF as OFF_PLAN

log = logging.getLogger(__name__)

REAP_SECONDS = 2.0


SUB_MARK = "@"  # the media key of a channel's stream n > 0: "<channel>@<n>"
MAX_STREAM_NUMBER = 9


def stream_key(channel_id: str, stream: int = 0) -> str:
    """The media plane's key for a channel's live stream: the channel ID for the main stream
    (the one recorded), ``<channel>@<n>`` for stream n (1: the sub stream)."""
    return channel_id if stream == 0 else f"{channel_id}{SUB_MARK}{stream}"


class GbStreams(HistoryStreams):
    """Every GB/T 28181 media session of the platform: the live ones here, the history ones
    (HistoryStreams) and the machinery under both (StreamDialogs) inherited."""

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
