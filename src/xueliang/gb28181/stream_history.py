"""History sessions: a device's own recordings played back (Playback) or fetched at a speed into
a file (Download), each under a key of its own (``<channel>~<n>``), so that several viewers can
each play a different range. MANSRTSP over INFO steers a playback (pause, resume, seek, speed);
the device's MediaStatus 121 (end of file) ends the session.
"""

from __future__ import annotations

import asyncio
import logging

from xueliang.gb28181 import manscdp, mansrtsp, sdp
from xueliang.gb28181.sip import SipRequest
from xueliang.gb28181.stream_dialogs import StreamDialogs
from xueliang.gb28181.stream_session import MediaTransport, StreamFailed, StreamSession
from xueliang.media.model import DownloadTarget

# The logger of streams.py, as before these modules were split from it.
log = logging.getLogger("xueliang.gb28181.streams")


class HistoryStreams(StreamDialogs):
    """The sessions of device-side recordings, on the machinery every session shares."""

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

    # --- what the device says of a playback ------------------------------------------------

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
