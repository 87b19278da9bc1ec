"""One channel's ingest loop: connect, publish packets into its hub, reconnect with back-off.

Runs in its own thread. PyAV releases the GIL while FFmpeg waits on the network, so many
channels share a process; the media workers (one process per group of channels) bound how many.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime

import av

from xueliang.media.hub import ChannelHub
from xueliang.media.model import IngestSpec, MediaEvent, StatusChanged
from xueliang.media.sources.base import OpenSource, Packet
from xueliang.media.sources.gb_rtp import open_gb_rtp_source
from xueliang.media.sources.rtsp import open_rtsp_source, redacted
from xueliang.media.sources.rtsp_native import NativeUnsupported, open_native_rtsp_source
from xueliang.media.sources.simulator import open_simulator
from xueliang.media.timestamps import TimestampRepair

log = logging.getLogger(__name__)


# Packets of other streams (audio) held back while the pieces of a key frame are joined.
MAX_DEFERRED = 32


class Backoff:
    """Exponential back-off between reconnects: 1, 2, 4 … capped; reset after a good session."""

    def __init__(self, first: float = 1.0, cap: float = 30.0) -> None:
        self.first, self.cap = first, cap
        self._next = first

    def next(self) -> float:
        delay = self._next
        self._next = min(self.cap, self._next * 2)
        return delay

    def reset(self) -> None:
        self._next = self.first


def _reason(exc: BaseException) -> str:
    if isinstance(exc, av.error.ExitError | TimeoutError):
        return "no data from the camera (timed out)"
    if isinstance(exc, av.error.HTTPUnauthorizedError | av.error.PermissionError):
        return "authentication failed"
    if isinstance(exc, av.error.HTTPNotFoundError):
        return "stream not found on the camera"
    if isinstance(exc, av.error.ConnectionRefusedError | ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, PermissionError):
        return "authentication failed"
    if isinstance(exc, FileNotFoundError):
        return "stream not found on the camera"
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return "the camera ended the stream"
    if isinstance(exc, socket.gaierror):
        return f"unknown host: {exc}"
    if isinstance(exc, av.error.EOFError):
        return "the camera ended the stream"
    text = str(exc)
    return text[:200] if text else type(exc).__name__


class ChannelIngest(threading.Thread):
    def __init__(
        self,
        spec: IngestSpec,
        hub: ChannelHub,
        emit: Callable[[MediaEvent], None],
        *,
        backoff: Backoff | None = None,
        rtsp_client: str = "own",
    ) -> None:
        super().__init__(name=f"ingest-{spec.channel_id}", daemon=True)
        self.spec = spec
        self.hub = hub
        self._emit = emit
        self._stop_event = threading.Event()
        self._backoff = backoff or Backoff()
        self.status: str = "offline"
        # Why this channel's stream goes to FFmpeg's RTSP client (None: Xueliang's own, which
        # is tried first for RTSP over TCP unless media.rtsp_client says "ffmpeg").
        self.ffmpeg_because: str | None = None if rtsp_client == "own" else "configured"

    def stop(self) -> None:
        self._stop_event.set()

    def _set_status(self, status: str, reason: str | None) -> None:
        if status == self.status and status == "online":
            return
        self.status = status
        self._emit(
            StatusChanged(self.spec.channel_id, status, reason, datetime.now(UTC))  # type: ignore[arg-type]
        )

    def run(self) -> None:
        while not self._stop_event.is_set():
            reason: str | None = None
            try:
                self._session()
                reason = "the camera ended the stream"
            except NativeUnsupported as exc:
                # Not a failure: the same camera, at once, through FFmpeg's client.
                self.ffmpeg_because = str(exc)
                log.info(
                    "channel %s: RTSP through FFmpeg from now on: %s", self.spec.channel_id, exc
                )
                continue  # (the hub is ended below)
            except Exception as exc:  # every failure of a session leads to a reconnect
                reason = _reason(exc)
                log.info(
                    "channel %s (%s): %s", self.spec.channel_id, redacted(self.spec.url), reason
                )
            finally:
                # Said before the consumers close, so that one that ends with the session (a
                # device download) is told why by the time its end is reported.
                if reason is not None and not self._stop_event.is_set():
                    self._set_status("offline", reason)
                self.hub.end()
            if self._stop_event.is_set():
                break
            self._stop_event.wait(self._backoff.next())
        self._set_status("offline", "stopped")

    def _open(self) -> AbstractContextManager[OpenSource]:
        if self.spec.url.startswith("sim:"):
            return open_simulator(self.spec.url, self._stop_event)
        if self.spec.url.startswith("rtp:"):
            return open_gb_rtp_source(self.spec, self._stop_event)
        if self.ffmpeg_because is None and self.spec.transport == "tcp":
            return open_native_rtsp_source(self.spec, self._stop_event)
        return open_rtsp_source(self.spec)

    def _publish(self, repair: dict[int, TimestampRepair], packet: Packet) -> None:
        now = time.time()
        for ready in repair[packet.stream_index].feed(packet):
            self.hub.publish(ready, now)

    def _session(self) -> None:
        with self._open() as source:
            repair = {
                i.index: TimestampRepair(max(1, int(1 / (source.frame_rate * i.time_base))))
                for i in source.streams
            }
            self.hub.begin(source.streams)
            online = False
            video = {i.index for i in source.streams if i.kind == "video"}
            held: Packet | None = None
            deferred: list[Packet] = []
            if source.pump is not None:
                # The source opened on a key frame and delivers whole pictures from now on.
                self._backoff.reset()
                self._set_status("online", None)
                source.pump(lambda packet: self._publish(repair, packet), self._stop_event)
                return
            for packet in source.packets:
                if self._stop_event.is_set():
                    return
                # A key frame may come out of FFmpeg's RTSP reader in pieces, one per RTP
                # marker: parameter sets and the first slices, then the rest, all with the same
                # timestamp (the first piece of a session with none). Pieces of one picture are
                # joined before anything sees them, or a recorder would count (and a player
                # show) two pictures. Only key frames are held, so live view waits for the
                # next packet once per GOP, not on every frame. Audio arriving between the
                # pieces waits too, and follows the joined picture.
                if held is not None:
                    if packet.stream_index != held.stream_index and len(deferred) < MAX_DEFERRED:
                        deferred.append(packet)
                        continue
                    if _same_picture(held, packet):
                        held = _joined(held, packet)
                        continue
                    self._publish(repair, held)
                    held = None
                    for other in deferred:
                        self._publish(repair, other)
                    deferred.clear()
                if packet.is_keyframe and packet.stream_index in video:
                    held = packet
                    continue
                self._publish(repair, packet)
                if not online:
                    online = True
                    self._backoff.reset()
                    self._set_status("online", None)


def _same_picture(held: Packet, packet: Packet) -> bool:
    if packet.stream_index != held.stream_index:
        return False
    if held.dts is None and held.pts is None:
        return packet.is_keyframe
    return packet.dts == held.dts and packet.pts == held.pts


def _joined(first: Packet, second: Packet) -> Packet:
    """One packet holding both pieces of a picture, with the second's timing (the first piece
    of a session may have none)."""
    joined = Packet(bytes(first) + bytes(second))
    joined.stream = second.stream
    joined.time_base = second.time_base
    joined.pts, joined.dts = second.pts, second.dts
    joined.is_keyframe = True
    return joined
