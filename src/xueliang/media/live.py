"""Live view: per channel, one fragmented-MP4 muxer fed by the hub, fanned out to viewers.

The muxer runs in the channel's media worker, in its ingest thread (a hub consumer), and writes
one moof+mdat per frame, so a frame reaches the browser one frame interval after it arrives.
Fragments cross to the control process and its event loop once per fragment (not once per
viewer) and are queued per viewer; a viewer whose
queue fills (a slow network) is dropped, never slowing the others or ingest. A new viewer gets
the init segment and the fragments since the last key frame, so it shows a picture at once.

The muxer exists only while somebody watches: the first viewer starts it, the last one leaving
stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import av
from av.stream import Stream

from xueliang.media.fmp4 import BoxSplitter, codec_string
from xueliang.media.hub import StreamInfo

if TYPE_CHECKING:
    from xueliang.media.service import MediaService

    Packet = av.Packet[Stream]
else:
    Packet = av.Packet

log = logging.getLogger(__name__)

# Fragments (frames) a viewer may fall behind before it is dropped: 4 s at 25 fps.
VIEWER_QUEUE = 100
WRITE_BUFFER = 4 * 1024 * 1024
LIVE_OPTIONS = {
    "movflags": "frag_every_frame+empty_moov+default_base_moof",
    "flush_packets": "1",
}


@dataclass(frozen=True, slots=True)
class InitMessage:
    codec: str
    mime: str
    segment: bytes


@dataclass(frozen=True, slots=True)
class Fragment:
    data: bytes
    keyframe: bool


@dataclass(frozen=True, slots=True)
class Closed:
    reason: str


LiveItem = InitMessage | Fragment | Closed


class _Writer:
    def __init__(self, sink: Callable[[bytes], None]) -> None:
        self._sink = sink

    def write(self, data: bytes) -> int:
        self._sink(bytes(data))
        return len(data)


class LiveMuxer:
    """Hub consumer: packets in, init segment and per-frame fragments out (ingest thread)."""

    def __init__(self, emit: Callable[[LiveItem], None]) -> None:
        self._emit = emit
        self._container: av.container.OutputContainer | None = None
        self._out: Stream | None = None
        self._video: StreamInfo | None = None
        self._splitter = BoxSplitter()
        self._keys: deque[bool] = deque()
        self._started_on_key = False

    def start(self, streams: Sequence[StreamInfo]) -> None:
        self._close()
        self._video = next((s for s in streams if s.kind == "video"), None)
        if self._video is None:
            return
        self._splitter = BoxSplitter()
        self._keys.clear()
        self._started_on_key = False
        # A buffer larger than any frame: FFmpeg writes each fragment in one call (flush_packets),
        # which the splitter passes on without copying it again.
        self._container = av.open(
            _Writer(self._on_bytes),
            "w",
            format="mp4",
            options=LIVE_OPTIONS,
            buffer_size=WRITE_BUFFER,
        )
        self._out = self._container.add_stream_from_template(self._video.template)

    def _on_bytes(self, data: bytes) -> None:
        had_init = self._splitter.init_segment is not None
        fragments = self._splitter.feed(data)
        if not had_init and self._splitter.init_segment is not None and self._video is not None:
            template = self._video.template
            extradata = template.codec_context.extradata
            codec = codec_string(self._video.codec, self._splitter.init_segment, extradata)
            self._emit(
                InitMessage(
                    codec=codec,
                    mime=f'video/mp4; codecs="{codec}"',
                    segment=self._splitter.init_segment,
                )
            )
        for frag in fragments:
            key = self._keys.popleft() if self._keys else False
            self._emit(Fragment(frag, key))

    def offer(self, packet: Packet, wallclock: float) -> bool:
        video, container, out = self._video, self._container, self._out
        if video is None or container is None or out is None:
            return True
        if packet.stream_index != video.index:
            return True
        if not self._started_on_key:
            if not packet.is_keyframe:
                return True
            self._started_on_key = True
        self._keys.append(packet.is_keyframe)
        stream = packet.stream
        try:
            packet.stream = out
            container.mux(packet)
        except (av.error.FFmpegError, ValueError) as exc:
            log.warning("live muxer: %s", exc)
            self._keys.pop()
        finally:
            packet.stream = stream
        return True

    def stop(self) -> None:
        self._close()

    def _close(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            try:
                container.close()
            except (av.error.FFmpegError, ValueError, OSError) as exc:
                log.debug("live muxer close: %s", exc)


@dataclass(frozen=True, slots=True)
class HlsSegment:
    seq: int
    data: bytes
    duration: float


# HLS: complete GOPs kept per channel, and how long a channel stays live after the last
# playlist request (HLS clients hold no connection).
HLS_SEGMENTS = 6
HLS_IDLE_SECONDS = 30.0


@dataclass(eq=False)
class Viewer:
    channel_id: str
    queue: asyncio.Queue[LiveItem] = field(default_factory=lambda: asyncio.Queue(VIEWER_QUEUE))


class _LiveChannel:
    """The event-loop side of one watched channel."""

    def __init__(self, channel_id: str) -> None:
        self.channel_id = channel_id
        self.viewers: set[Viewer] = set()
        self.init: InitMessage | None = None
        self.gop: list[Fragment] = []
        # HLS: finished GOPs as segments, and when the open GOP began.
        self.hls: deque[HlsSegment] = deque(maxlen=HLS_SEGMENTS)
        self.hls_seq = 0
        self.hls_until = 0.0
        self.gop_started = 0.0
        self.hls_ready = asyncio.Event()

    def dispatch(self, item: LiveItem) -> None:
        now = asyncio.get_running_loop().time()
        if isinstance(item, InitMessage):
            self.init, self.gop = item, []
            self.hls.clear()  # new codec parameters: old segments no longer fit the init
        elif isinstance(item, Fragment):
            if self.init is None:
                return  # a fragment before any init cannot be played
            if item.keyframe:
                if self.gop:
                    self.hls.append(
                        HlsSegment(
                            self.hls_seq,
                            b"".join(f.data for f in self.gop),
                            max(0.001, now - self.gop_started),
                        )
                    )
                    self.hls_seq += 1
                    self.hls_ready.set()
                self.gop, self.gop_started = [item], now
            elif self.gop:
                self.gop.append(item)
        else:  # Closed: the channel is no longer pulled; its viewers are told and let go
            self.init, self.gop = None, []
        for viewer in list(self.viewers):
            self._send(viewer, item)

    def _send(self, viewer: Viewer, item: LiveItem) -> None:
        try:
            viewer.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.viewers.discard(viewer)
            # Make room for the notice: the viewer is gone either way.
            while not viewer.queue.empty():
                viewer.queue.get_nowait()
            viewer.queue.put_nowait(Closed("too slow: the viewer fell behind the live stream"))

    def welcome(self, viewer: Viewer) -> None:
        if self.init is not None:
            self._send(viewer, self.init)
            for frag in self.gop:
                self._send(viewer, frag)


class LiveService:
    def __init__(self, media: MediaService) -> None:
        self._media = media
        self._channels: dict[str, _LiveChannel] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        # Items from the workers' reader threads wait here; one wake-up of the loop drains all
        # that arrived meanwhile (a wake-up per frame per channel would cost a syscall each).
        self._inbox: deque[tuple[str, LiveItem]] = deque()
        self._drain_scheduled = False
        media.live_sink = self._on_item

    def _on_item(self, channel_id: str, item: LiveItem) -> None:
        """From a media worker's reader thread: hand the item to the event loop."""
        loop = self._loop
        if loop is None or channel_id not in self._channels:
            return
        self._inbox.append((channel_id, item))
        if not self._drain_scheduled:
            self._drain_scheduled = True
            # RuntimeError: the loop has closed (shutdown), so nobody is watching.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        # Cleared first: an item appended from now on is either seen below or schedules a
        # new drain.
        self._drain_scheduled = False
        while self._inbox:
            channel_id, item = self._inbox.popleft()
            ch = self._channels.get(channel_id)
            if ch is not None:
                ch.dispatch(item)

    def hls_active(self, channel_id: str) -> bool:
        ch = self._channels.get(channel_id)
        if ch is None:
            return False
        return ch.hls_until > asyncio.get_running_loop().time()

    def viewer_count(self, channel_id: str) -> int:
        ch = self._channels.get(channel_id)
        return len(ch.viewers) if ch else 0

    def watching(self) -> list[str]:
        """Channels whose live muxer runs (someone watches, or HLS was asked for lately)."""
        return sorted(self._channels)

    async def join(self, channel_id: str) -> Viewer:
        """Start watching. Raises LookupError when the channel has no live source."""
        if not self._media.is_pulled(channel_id):
            raise LookupError(f"channel {channel_id} has no live source")
        self._loop = asyncio.get_running_loop()
        viewer = Viewer(channel_id)
        ch = self._channels.get(channel_id)
        if ch is None:
            ch = self._channels[channel_id] = _LiveChannel(channel_id)
            ch.viewers.add(viewer)
            self._media.watch(channel_id)  # one pipe write: cheap enough on the loop
        else:
            ch.viewers.add(viewer)
            ch.welcome(viewer)
        return viewer

    async def leave(self, viewer: Viewer) -> None:
        ch = self._channels.get(viewer.channel_id)
        if ch is None:
            return
        ch.viewers.discard(viewer)
        await self._maybe_stop(ch)

    async def _maybe_stop(self, ch: _LiveChannel) -> None:
        loop = asyncio.get_running_loop()
        if ch.viewers or ch.hls_until > loop.time() or self._channels.get(ch.channel_id) is not ch:
            return
        del self._channels[ch.channel_id]
        self._media.unwatch(ch.channel_id)

    # --- HLS (the fallback where WebSocket + MSE is not available) --------------------------

    async def hls(self, channel_id: str, *, wait: float = 10.0) -> _LiveChannel:
        """The channel with at least one complete GOP, kept live for HLS_IDLE_SECONDS more."""
        ch = self._channels.get(channel_id)
        if ch is None:
            viewer = await self.join(channel_id)  # starts the muxer
            ch = self._channels[channel_id]
            ch.viewers.discard(viewer)
        loop = asyncio.get_running_loop()
        ch.hls_until = loop.time() + HLS_IDLE_SECONDS
        loop.call_later(HLS_IDLE_SECONDS + 1, lambda: loop.create_task(self._maybe_stop(ch)))
        if not ch.hls:
            try:
                await asyncio.wait_for(ch.hls_ready.wait(), wait)
            except TimeoutError:
                raise LookupError(f"channel {channel_id}: no picture yet") from None
        return ch

    async def hls_playlist(self, channel_id: str, query: str) -> str:
        ch = await self.hls(channel_id)
        segments = list(ch.hls)
        target = max(1, math.ceil(max(seg.duration for seg in segments)))
        suffix = f"?{query}" if query else ""
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:7",
            f"#EXT-X-TARGETDURATION:{target}",
            f"#EXT-X-MEDIA-SEQUENCE:{segments[0].seq}",
            f'#EXT-X-MAP:URI="live/init.mp4{suffix}"',
        ]
        for seg in segments:
            lines += [f"#EXTINF:{seg.duration:.3f},", f"live/{seg.seq}.m4s{suffix}"]
        return "\n".join(lines) + "\n"

    async def hls_init(self, channel_id: str) -> bytes:
        ch = await self.hls(channel_id)
        assert ch.init is not None
        return ch.init.segment

    async def hls_segment(self, channel_id: str, seq: int) -> bytes:
        ch = await self.hls(channel_id)
        for seg in ch.hls:
            if seg.seq == seq:
                return seg.data
        raise LookupError(f"segment {seq} is no longer (or not yet) available")
