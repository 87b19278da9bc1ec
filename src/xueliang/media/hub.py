"""The stream hub: one channel's packets fanned out to every consumer.

The ingest thread publishes each access unit once; consumers (recorder, live muxers, later
snapshots, analytics and cascade) receive it without a copy. A consumer must not block: one that
cannot keep up drops itself (``offer`` returns False) and is removed, so ingest never stalls. The
packets since the last key frame are kept, so a new consumer starts on a key frame at once.

Consumers are called from one thread at a time, never concurrently: a consumer subscribing from
another thread (a live viewer joining from the event loop) replays the GOP while ingest waits for
it. FFmpeg muxers are not thread-safe, and the packets are shared (a muxer retimes one in place),
so two threads inside consumers at once can crash the process, not just garble a stream.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Protocol

import av
from av.stream import Stream

if TYPE_CHECKING:
    Packet = av.Packet[Stream]
else:
    Packet = av.Packet

log = logging.getLogger(__name__)

# A GOP longer than this (a camera with a 10-minute key-frame interval) is not cached in full.
MAX_GOP_PACKETS = 600


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What a consumer needs to set up its output for one input stream."""

    index: int
    kind: str  # "video" | "audio"
    codec: str
    time_base: Fraction
    template: av.stream.Stream


@dataclass(frozen=True, slots=True)
class KeyFrame:
    """A copy of a channel's newest video key frame, for a snapshot: plain data, so that it
    crosses from a media worker to the control process."""

    data: bytes
    codec: str  # FFmpeg decoder name (h264, hevc)
    extradata: bytes | None  # the stream's parameter sets where they are out of band
    wallclock: float  # when it arrived (seconds since the epoch)


class Consumer(Protocol):
    def start(self, streams: Sequence[StreamInfo]) -> None:
        """A (new) session's streams; called before its first packet."""

    def offer(self, packet: Packet, wallclock: float) -> bool:
        """Take one packet without blocking; False means the consumer gives up."""

    def stop(self) -> None:
        """The session ended (source gone, or unsubscribed)."""


class ChannelHub:
    def __init__(self, channel_id: str) -> None:
        self.channel_id = channel_id
        # _deliver is held whenever a consumer is called (re-entrant: a consumer's callback may
        # ask the hub for its streams); _state guards the GOP and stream list only, briefly, so
        # a snapshot never waits for a consumer.
        self._deliver = threading.RLock()
        self._state = threading.Lock()
        self._consumers: list[Consumer] = []
        self._streams: list[StreamInfo] = []
        self._video_index: int | None = None
        self._gop: list[tuple[Packet, float]] = []
        self.packets = 0

    @property
    def streams(self) -> list[StreamInfo]:
        return list(self._streams)

    def begin(self, streams: Sequence[StreamInfo]) -> None:
        """A source session starts (after connect or reconnect)."""
        with self._deliver:
            with self._state:
                self._streams = list(streams)
                self._video_index = next((s.index for s in streams if s.kind == "video"), None)
                self._gop.clear()
            for c in list(self._consumers):
                c.start(self._streams)

    def end(self) -> None:
        """The source session ended; consumers close what they have open."""
        with self._deliver:
            with self._state:
                self._gop.clear()
                self._streams = []
            for c in list(self._consumers):
                c.stop()

    def publish(self, packet: Packet, wallclock: float) -> None:
        self.packets += 1
        with self._deliver:
            with self._state:
                if packet.stream_index == self._video_index:
                    if packet.is_keyframe:
                        self._gop.clear()
                    if len(self._gop) < MAX_GOP_PACKETS:
                        self._gop.append((packet, wallclock))
                elif self._gop:
                    self._gop.append((packet, wallclock))
            dropped = [c for c in list(self._consumers) if not c.offer(packet, wallclock)]
            if dropped:
                self._consumers = [c for c in self._consumers if c not in dropped]
                for c in dropped:
                    log.info("channel %s: dropped a consumer that fell behind", self.channel_id)
                    c.stop()

    def latest_keyframe(self) -> KeyFrame | None:
        """The newest video key frame; None before the first one of a session."""
        with self._state:
            if not self._gop or self._video_index is None:
                return None
            packet, wallclock = self._gop[0]
            if packet.stream_index != self._video_index or not packet.is_keyframe:
                return None
            info = next((s for s in self._streams if s.index == self._video_index), None)
            data = bytes(packet)
        if info is None:
            return None
        extradata = info.template.codec_context.extradata
        # info.codec, not the template's codec name: a template that lives in an output
        # container (GB/T 28181 and RTSP sources) is named for its encoder (libx264).
        return KeyFrame(data, info.codec, extradata or None, wallclock)

    def subscribe(self, consumer: Consumer) -> None:
        """Add a consumer; it receives the streams and the current GOP at once.

        Holding the delivery lock throughout means no packet is published between the GOP
        copy and its replay: the consumer gets each packet exactly once.
        """
        with self._deliver:
            with self._state:
                streams = list(self._streams)
                gop = list(self._gop)
            self._consumers = [*self._consumers, consumer]
            if not streams:
                return
            consumer.start(streams)
            for packet, wallclock in gop:
                if not consumer.offer(packet, wallclock):
                    self._consumers = [c for c in self._consumers if c is not consumer]
                    consumer.stop()
                    return

    def unsubscribe(self, consumer: Consumer) -> None:
        with self._deliver:
            if consumer not in self._consumers:
                return
            self._consumers = [c for c in self._consumers if c is not consumer]
            consumer.stop()

    @property
    def consumer_count(self) -> int:
        return len(self._consumers)
