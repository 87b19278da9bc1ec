"""Playback by time range: the recorded segments of [start, end) as ONE continuous stream.

The segments that cover the range are remuxed, never re-encoded, into one fragmented MP4
(``frag_keyframe+empty_moov+default_base_moof``) that is written out fragment by fragment while
it is being read: a 24-hour range costs one GOP of memory, not the range.

- **Start.** The stream starts on the key frame at or before ``start`` (a decoder needs one), so
  it may begin up to one GOP early. The recorded time of its first frame is answered in the
  ``X-Playback-Start`` header: media time ``t`` of the stream is recorded time
  ``X-Playback-Start + t`` until the first gap.
- **End.** The last frame is the last one recorded before ``end``.
- **Timestamps** are rewritten so that they run on without a jump across segment boundaries:
  segment *i+1*'s first frame follows segment *i*'s last one by one frame duration.
- **Gaps** (the camera was offline, the disk was full) are *concatenated*: the player does not
  sit on a frozen picture for the length of the outage, and a media time bar over a 24-hour
  range stays usable. What a VMS user expects to see is the recorded time, so the gaps are
  reported beside the stream: ``X-Playback-Gaps`` (their count) in the response, and the
  timeline call (``GET /channels/{id}/playback/timeline``) lists the recorded spans with the media
  offset at which each begins in the stream and the gaps between them; the player maps its
  ``currentTime`` to recorded time with it. Segments less than ``GAP_TOLERANCE`` apart (the
  recordings' own gap report uses the same) count as continuous.
- **Seeking** is a new request with a new ``start``; **speed** (1/2/4/8×) is the player's
  ``playbackRate``: the server always sends the recorded frames at whatever rate they are read.
- A segment that cannot be read (a damaged or missing file) is skipped (the timeline, made from
  the index, still shows it), and so is everything after a change of video codec or picture
  size within the range (one MP4 track cannot change them): the stream then ends early.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from itertools import chain, pairwise
from typing import TYPE_CHECKING

import av
from av.audio.stream import AudioStream
from av.container import InputContainer, OutputContainer
from av.stream import Stream
from av.video.stream import VideoStream

from xueliang.access.audit import AuditLog
from xueliang.access.permissions import Permission
from xueliang.access.principal import Principal
from xueliang.core.errors import InvalidInput, NotFound
from xueliang.media.segments import GAP_TOLERANCE_SECONDS, SegmentFile, SegmentIndex
from xueliang.registry.common import visible_channel
from xueliang.store.db import Database

if TYPE_CHECKING:
    Packet = av.Packet[Stream]
else:
    Packet = av.Packet

log = logging.getLogger(__name__)

MAX_RANGE = timedelta(hours=24)
# The same as the recordings' gap report (GET /recordings/gaps), so that both name the same gaps.
GAP_TOLERANCE = timedelta(seconds=GAP_TOLERANCE_SECONDS)
FRAGMENTED_MP4 = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}
# Hand the client what the muxer wrote once this much has gathered (a fragment is one GOP).
CHUNK_BYTES = 64 * 1024
# Assumed frame duration of a segment holding a single frame.
DEFAULT_FRAME = Fraction(1, 25)


def utc(value: datetime, name: str) -> datetime:
    """A time from outside, in UTC; refuses times without a zone and times beyond the calendar."""
    if value.tzinfo is None:
        raise InvalidInput(
            f"{name} needs a time zone (ISO 8601, e.g. 2025-01-01T08:00+08:00)",
            details=[{"loc": ["query", name], "message": "time zone missing"}],
        )
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(f"{name} is out of range") from None


def check_range(
    start: datetime, end: datetime, *, limit: timedelta = MAX_RANGE
) -> tuple[datetime, datetime]:
    """[start, end) in UTC, refused unless it is a range of at most ``limit``."""
    start, end = utc(start, "start"), utc(end, "end")
    if end <= start:
        raise InvalidInput("end must be after start")
    if end - start > limit:
        raise InvalidInput(f"a range may span at most {limit.total_seconds() / 3600:g} hours")
    return start, end


# --- reading one segment -----------------------------------------------------------------------


def _seconds(delta: timedelta) -> Fraction:
    return Fraction(delta // timedelta(microseconds=1), 1_000_000)


class SegmentReader:
    """One segment file's packets from the key frame at or before ``start`` until ``end``.

    Times are seconds after the file's first video frame (``Fraction``); recorded time is the
    segment's indexed start plus that. Raises OSError, ValueError or FFmpegError when the file
    cannot be opened; a file damaged further in ends its packets early (logged).
    """

    def __init__(self, seg: SegmentFile, start: datetime, end: datetime) -> None:
        self.seg = seg
        self.container: InputContainer = av.open(str(seg.path))
        try:
            if not self.container.streams.video:
                raise ValueError("the segment has no video")
            self.video: VideoStream = self.container.streams.video[0]
            audio = self.container.streams.audio
            self.audio: AudioStream | None = audio[0] if audio else None
            self._lo = _seconds(start - seg.start)
            self._hi = _seconds(end - seg.start)
            self._base_dts, self.origin = self._first_video_dts()
        except BaseException:
            self.container.close()
            raise

    def _first_video_dts(self) -> tuple[int, Fraction]:
        for packet in self.container.demux(self.video):
            if packet.size and packet.dts is not None:
                return packet.dts, Fraction(packet.dts) * packet.time_base
        raise ValueError("the segment holds no video frame")

    def time_of(self, packet: Packet) -> Fraction | None:
        if packet.dts is None:
            return None
        return Fraction(packet.dts) * packet.time_base - self.origin

    def packets(self) -> Iterator[tuple[Packet, Fraction]]:
        """(packet, time) in file order; the first is a video key frame."""
        try:
            yield from self._packets()
        except (OSError, av.error.FFmpegError) as exc:
            log.warning("recording %s could not be read to its end: %s", self.seg.id, exc)

    def _packets(self) -> Iterator[tuple[Packet, Fraction]]:
        video = self.video.index
        target = self._base_dts
        if self._lo > 0:
            tb = self.video.time_base
            assert tb is not None
            target += int(self._lo / tb)
        self.container.seek(target, stream=self.video, backward=True)
        streams: list[Stream] = [self.video] if self.audio is None else [self.video, self.audio]
        # The GOP so far while still before ``lo``: the stream must begin on its key frame.
        gop: list[tuple[Packet, Fraction]] = []
        started = False
        for packet in self.container.demux(streams):
            if packet.size == 0:
                continue
            t = self.time_of(packet)
            if t is None:
                continue
            is_video = packet.stream_index == video
            if t >= self._hi:
                if is_video:
                    break
                continue
            if started:
                yield packet, t
            elif is_video:
                if t <= self._lo:
                    if packet.is_keyframe:
                        gop = [(packet, t)]
                    elif gop:
                        gop.append((packet, t))
                    continue
                if not gop and not packet.is_keyframe:
                    continue  # never begin inside a GOP
                started = True
                yield from gop
                gop = []
                yield packet, t
            elif gop and t >= gop[0][1]:
                gop.append((packet, t))
        # The range ended (or the file did) before a frame after ``lo``.
        yield from gop

    def close(self) -> None:
        self.container.close()


def _picture(s: VideoStream) -> tuple[str, int, int]:
    return s.codec_context.name, s.codec_context.width, s.codec_context.height


# --- the range ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Span:
    """A stretch of continuous recording as it appears in the stream."""

    start: datetime  # recorded time of its first frame
    end: datetime
    offset: float  # where it begins in the stream (seconds of media time)


@dataclass(frozen=True, slots=True)
class Gap:
    start: datetime
    end: datetime


@dataclass(slots=True)
class _Opened:
    reader: SegmentReader
    first: tuple[Packet, Fraction]
    rest: Iterator[tuple[Packet, Fraction]]

    def packets(self) -> Iterator[tuple[Packet, Fraction]]:
        return chain([self.first], self.rest)


class RangeRemux:
    """[start, end) of one channel's segments, remuxed into one output with continuous time.

    Construction opens the first readable segment and finds the key frame the stream starts
    on (``first_frame``); ``mux`` does the rest. Raises NotFound when nothing can be read.
    """

    def __init__(self, segments: Sequence[SegmentFile], start: datetime, end: datetime) -> None:
        self.start, self.end = start, end
        self._todo = list(segments)
        self._readers: list[SegmentReader] = []
        first = self._next()
        if first is None:
            raise NotFound("nothing recorded in this range can be read")
        self._first = first
        self.first_frame = first.reader.seg.start + timedelta(seconds=float(first.first[1]))
        # What the stream is made of (as far as the index knows before reading on).
        self.segments = [first.reader.seg, *self._todo]

    def _next(self) -> _Opened | None:
        """The next segment with something in the range, opened."""
        while self._todo:
            seg = self._todo.pop(0)
            try:
                reader = SegmentReader(seg, self.start, self.end)
            except (OSError, ValueError, av.error.FFmpegError) as exc:
                log.warning("recording %s (%s) cannot be read: %s", seg.id, seg.path, exc)
                continue
            packets = reader.packets()
            first = next(packets, None)
            if first is None:
                reader.close()
                continue
            self._readers.append(reader)
            return _Opened(reader, first, packets)
        return None

    def timeline(self) -> tuple[list[Span], list[Gap]]:
        """The recorded spans in the stream (from the index) and the gaps between them."""
        spans: list[Span] = []
        offset = 0.0
        for i, seg in enumerate(self.segments):
            s = self.first_frame if i == 0 else seg.start
            e = min(seg.end, self.end)
            if e <= s:
                continue
            last = spans[-1] if spans else None
            if last is not None and s - last.end <= GAP_TOLERANCE:
                spans[-1] = Span(last.start, max(last.end, e), last.offset)
            else:
                spans.append(Span(s, e, round(offset, 6)))
            offset += (e - s).total_seconds()
        gaps = [Gap(a.end, b.start) for a, b in pairwise(spans)]
        return spans, gaps

    def mux(self, output: OutputContainer) -> Iterator[None]:
        """Write the range into ``output``, yielding after every packet (to drain a writer)."""
        try:
            yield from self._mux(output)
        finally:
            self.close()

    def _mux(self, output: OutputContainer) -> Iterator[None]:
        template = self._first.reader.video
        out_video = output.add_stream_from_template(template)
        out_audio: Stream | None = None
        first_audio = self._first.reader.audio
        if first_audio is not None:
            try:
                out_audio = output.add_stream_from_template(first_audio)
            except (ValueError, av.error.FFmpegError) as exc:
                log.info("playback: audio (%s) left out: %s", first_audio.codec_context.name, exc)
        audio_codec = first_audio.codec_context.name if out_audio and first_audio else None
        next_video = Fraction(0)  # media time of the next video frame
        last_out: dict[int, Fraction] = {}  # per output stream: the last dts written
        current: _Opened | None = self._first
        while current is not None:
            reader = current.reader
            if _picture(reader.video) != _picture(template):
                log.warning(
                    "playback of %s: the video changes in recording %s; the stream ends there",
                    reader.seg.channel_id,
                    reader.seg.id,
                )
                return
            audio_index = (
                reader.audio.index
                if reader.audio is not None and reader.audio.codec_context.name == audio_codec
                else None
            )
            # This segment's times move by ``offset``: its first frame (a video key frame)
            # follows the previous segment's last one.
            offset = next_video - current.first[1]
            prev_t: Fraction | None = None
            frame = DEFAULT_FRAME
            for packet, t in current.packets():
                is_video = packet.stream_index == reader.video.index
                out: Stream
                if is_video:
                    out = out_video
                    if prev_t is not None and t > prev_t:
                        frame = t - prev_t
                    elif prev_t is None and packet.duration:
                        frame = Fraction(packet.duration) * packet.time_base
                    prev_t = t
                elif packet.stream_index == audio_index and out_audio is not None:
                    out = out_audio
                else:
                    continue
                tb = packet.time_base
                dts = round((offset + t) / tb)
                previous = last_out.get(out.index)
                if previous is not None and dts * tb <= previous:
                    if not is_video:
                        continue  # audio overlapping the segment before
                    dts = int(previous / tb) + 1
                assert packet.dts is not None
                shift = packet.pts - packet.dts if packet.pts is not None else 0
                packet.dts, packet.pts = dts, dts + shift
                last_out[out.index] = dts * tb
                if is_video:
                    next_video = dts * tb + frame
                packet.stream = out
                output.mux(packet)
                yield
            reader.close()
            current = self._next()

    def close(self) -> None:
        for reader in self._readers:
            reader.close()
        self._readers.clear()


class _Sink:
    """A write-only, unseekable file for the muxer that gathers what it writes."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        self.size += len(data)
        return len(data)

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        self.size = 0
        return out


def fragmented_mp4(remux: RangeRemux) -> Iterator[bytes]:
    """The range as a fragmented MP4, in chunks as the muxer writes them."""
    sink = _Sink()
    output = av.open(sink, "w", format="mp4", options=FRAGMENTED_MP4)
    closed = False
    try:
        for _ in remux.mux(output):
            if sink.size >= CHUNK_BYTES:
                yield sink.take()
        output.close()
        closed = True
        if sink.size:
            yield sink.take()
    finally:
        if not closed:
            with contextlib.suppress(OSError, av.error.FFmpegError):
                output.close()
            remux.close()


# --- the service -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlaybackStream:
    channel_id: str
    first_frame: datetime
    gaps: int
    chunks: Iterator[bytes]


@dataclass(frozen=True, slots=True)
class Timeline:
    channel_id: str
    start: datetime
    end: datetime
    first_frame: datetime
    spans: list[Span]
    gaps: list[Gap]


class PlaybackService:
    def __init__(self, db: Database, audit: AuditLog, segments: SegmentIndex) -> None:
        self._db = db
        self._audit = audit
        self._segments = segments

    def _remux(
        self, principal: Principal, channel_id: str, start: datetime, end: datetime
    ) -> RangeRemux:
        principal.require(Permission.VIDEO_PLAYBACK)
        start, end = check_range(start, end)
        with self._db.read() as s:
            visible_channel(s, principal, channel_id)
        segments = self._segments.covering(channel_id, start, end)
        if not segments:
            raise NotFound(f"nothing of channel {channel_id} is recorded in this range")
        return RangeRemux(segments, start, end)

    def open(
        self, principal: Principal, channel_id: str, start: datetime, end: datetime
    ) -> PlaybackStream:
        """The range as one fragmented MP4 stream; audited once, before the first byte."""
        remux = self._remux(principal, channel_id, start, end)
        try:
            _spans, gaps = remux.timeline()
            with self._db.transaction() as s:
                self._audit.append(
                    s,
                    principal,
                    "video.playback",
                    target=f"channel:{channel_id}",
                    detail={"start": start.isoformat(), "end": end.isoformat()},
                )
        except BaseException:
            remux.close()
            raise
        return PlaybackStream(channel_id, remux.first_frame, len(gaps), fragmented_mp4(remux))

    def timeline(
        self, principal: Principal, channel_id: str, start: datetime, end: datetime
    ) -> Timeline:
        """Where the stream of the same range holds what recorded time (no media: not audited)."""
        remux = self._remux(principal, channel_id, start, end)
        try:
            spans, gaps = remux.timeline()
        finally:
            remux.close()
        return Timeline(channel_id, start, end, remux.first_frame, spans, gaps)
