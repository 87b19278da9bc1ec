"""The recorder: one channel's packets into key-frame-aligned fragmented MP4 segments.

Each segment starts on a key frame and closes at the first key frame after the configured length.
Fragmented MP4 (a moof per key frame) means a killed process leaves a file that is readable up to
its last complete fragment; start-up repair indexes such files. Packets are copied, never
re-encoded, with one exception: G.711 audio, which MP4 cannot hold, is transcoded to AAC
(``xueliang.media.audio``); audio in a codec that is neither copied nor transcoded is left out
(logged once per session), never failing the video. Runs inside the ingest thread as a hub
consumer: writes go to the page cache and do not block on the disk.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import av
from av.audio.codeccontext import AudioCodecContext
from av.stream import Stream

from xueliang.media.audio import G711ToAac, audio_plan
from xueliang.media.hub import StreamInfo
from xueliang.media.model import SegmentClosed

if TYPE_CHECKING:
    Packet = av.Packet[Stream]
else:
    Packet = av.Packet

log = logging.getLogger(__name__)

# flush_packets: each finished fragment (one GOP) goes to the file at once, not when FFmpeg's
# I/O buffer fills, so a killed process loses at most the GOP in progress.
MP4_OPTIONS = {"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"}
# How far segment starts may follow the media clock away from the wall clock (see _begin): the
# scale of arrival jitter, well within the recordings' gap tolerance (GAP_TOLERANCE_SECONDS).
MAX_DRIFT = timedelta(seconds=0.5)
# A key frame at most this far (media time) after the last segment's end continues it.
CONTIGUOUS_SECONDS = 0.5


def segment_path(channel_id: str, start: datetime) -> str:
    """Relative path of a segment: ``<channel>/<YYYYMMDD>/<HHMMSS.mmm>.mp4`` in UTC."""
    t = start.astimezone(UTC)
    return f"{channel_id}/{t:%Y%m%d}/{t:%H%M%S}.{t.microsecond // 1000:03d}.mp4"


def _seconds(packet: Packet) -> float | None:
    dts = packet.dts
    if dts is None:
        return None
    tb = packet.time_base
    if tb is None:
        return None
    # Integer arithmetic, correctly rounded like float(dts * tb), without building a second
    # Fraction per packet (PyAV already builds one for time_base; each costs microseconds).
    return dts * tb.numerator / tb.denominator


class _Open:
    def __init__(
        self,
        path: Path,
        rel: str,
        streams: Sequence[StreamInfo],
        start: datetime,
        options: dict[str, str],
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.rel, self.start = path, rel, start
        self.container = av.open(str(path), "w", format="mp4", options=options)
        self.map: dict[int, av.stream.Stream] = {}
        self.transcoders: dict[int, G711ToAac] = {}
        self.aligned: set[int] = set()  # audio streams past the first video frame
        for info in streams:
            try:
                ctx = info.template.codec_context
                if isinstance(ctx, AudioCodecContext) and audio_plan(info.codec) == "aac":
                    tr = G711ToAac(self.container, info.codec, ctx.sample_rate, ctx.channels)
                    self.transcoders[info.index] = tr
                    self.map[info.index] = tr.stream
                else:
                    self.map[info.index] = self.container.add_stream_from_template(info.template)
            except (ValueError, av.error.FFmpegError) as exc:
                log.warning(
                    "segment %s: stream %s (%s) not recorded: %s", rel, info.index, info.codec, exc
                )
        self.codec = next((s.codec for s in streams if s.kind == "video"), "unknown")
        # Media times in seconds: packets are shared by consumers, and a muxer rescales a
        # packet's timestamps (and time base) to its own, so only seconds compare safely.
        self.first_time: float | None = None
        self.last_time: float | None = None
        self.frame_dur = 0.0
        self.frames = 0


class SegmentRecorder:
    """A hub consumer writing one channel's segments and reporting each closed one.

    ``name`` places a segment under ``root`` (by channel and start); ``options`` are the MP4
    muxer's. A download writes a single file (``segment_seconds`` infinite, a fixed name and a
    regular MP4 with its index in front): see download.py."""

    def __init__(
        self,
        root: Path,
        channel_id: str,
        *,
        segment_seconds: float,
        on_segment: Callable[[SegmentClosed], None],
        name: Callable[[str, datetime], str] = segment_path,
        options: dict[str, str] | None = None,
    ) -> None:
        self._root = root
        self._channel_id = channel_id
        self._segment_seconds = segment_seconds
        self._on_segment = on_segment
        self._name = name
        self._options = MP4_OPTIONS if options is None else options
        self._streams: list[StreamInfo] = []
        self._video: StreamInfo | None = None
        self._open: _Open | None = None
        # The last segment's end, recorded and media time, while its stream goes on.
        self._last: tuple[datetime, float] | None = None
        self._last_start: datetime | None = None
        self.failed: str | None = None

    # --- Consumer ------------------------------------------------------------------------------

    def start(self, streams: Sequence[StreamInfo]) -> None:
        self._close()
        self._last = None  # a new session's clock starts anew
        self._streams = []
        for s in streams:
            if s.kind == "audio" and audio_plan(s.codec) == "drop":
                # Once per session: every segment of it goes without this track.
                log.warning(
                    "channel %s: audio stream %s (%s) cannot go into MP4; recorded without it",
                    self._channel_id,
                    s.index,
                    s.codec,
                )
            elif s.kind in ("video", "audio"):
                self._streams.append(s)
        self._video = next((s for s in streams if s.kind == "video"), None)

    def offer(self, packet: Packet, wallclock: float) -> bool:
        video = self._video
        if video is None:
            return True
        is_video = packet.stream_index == video.index
        t = _seconds(packet) if is_video else None
        if is_video and packet.is_keyframe and self._due(t):
            self._close()
            try:
                self._begin(t, wallclock)
            except (OSError, av.error.FFmpegError) as exc:
                # A full or failing disk: report and keep ingest (and live view) running.
                self.failed = f"cannot open a segment: {exc}"
                log.error("channel %s: %s", self._channel_id, self.failed)
                self._open = None
        seg = self._open
        if seg is None:
            return True  # waiting for the first key frame
        out = seg.map.get(packet.stream_index)
        if out is None:
            return True
        if is_video:
            if t is not None:
                if seg.first_time is None:
                    seg.first_time = t
                if seg.last_time is not None and t > seg.last_time:
                    seg.frame_dur = t - seg.last_time
                seg.last_time = t
            seg.frames += 1
        elif packet.stream_index not in seg.aligned:
            # Audio from before the segment's first frame is left out: a fragmented MP4 cannot
            # start one track before another and would stretch that frame over the difference.
            t = _seconds(packet)
            if seg.first_time is not None and t is not None and t < seg.first_time:
                return True
            seg.aligned.add(packet.stream_index)  # later packets come later
        transcoder = seg.transcoders.get(packet.stream_index)
        if transcoder is not None:
            self._transcode(seg, packet.stream_index, transcoder, packet)
            return True
        stream = packet.stream
        try:
            packet.stream = out
            seg.container.mux(packet)
        except (OSError, av.error.FFmpegError) as exc:
            self.failed = f"write failed: {exc}"
            log.error("channel %s: %s", self._channel_id, self.failed)
            self._close()
        finally:
            packet.stream = stream
        return True

    def stop(self) -> None:
        self._close()

    @property
    def written_seconds(self) -> float:
        """Media time in the segment in progress (0 before its first frame)."""
        seg = self._open
        if seg is None or seg.first_time is None or seg.last_time is None:
            return 0.0
        return seg.last_time - seg.first_time + seg.frame_dur

    def _transcode(self, seg: _Open, index: int, transcoder: G711ToAac, packet: Packet) -> None:
        try:
            encoded = transcoder.feed(packet, seg.first_time)
        except (ValueError, av.error.FFmpegError) as exc:
            # Undecodable audio: the rest of this segment goes without it; the video goes on.
            log.warning("segment %s: audio %s left out from here: %s", seg.rel, index, exc)
            del seg.transcoders[index]
            seg.map.pop(index, None)
            return
        self._mux(seg, encoded)

    def _mux(self, seg: _Open, packets: list[Packet]) -> None:
        if not packets:
            return
        try:
            seg.container.mux(packets)
        except (OSError, av.error.FFmpegError) as exc:
            self.failed = f"write failed: {exc}"
            log.error("channel %s: %s", self._channel_id, self.failed)
            self._close()

    # --- segments ------------------------------------------------------------------------------

    def _due(self, t: float | None) -> bool:
        """Whether a key frame at media time ``t`` begins a new segment."""
        seg = self._open
        if seg is None:
            return True
        if seg.first_time is None or t is None:
            return False
        elapsed = t - seg.first_time
        # A millisecond of slack: key frames exactly one segment apart differ by a hair less
        # in floating point (2.0018 - 1.0018), and would otherwise run a segment a GOP long.
        return elapsed >= self._segment_seconds - 0.001

    def _begin(self, t: float | None, wallclock: float) -> None:
        start = datetime.fromtimestamp(wallclock, UTC)
        # A segment's end is its start plus its media; the next one starts when its key frame
        # arrives. Jitter in that arrival (a loaded machine, the network) would make segments
        # of a continuous recording overlap (a playback up to one segment's end would take
        # frames of the next) or open holes between them. So a segment that continues the last
        # one's stream starts where that one's media clock puts it, unless that is more than
        # MAX_DRIFT from the wall clock (a camera clock running fast or slow, media sent
        # faster than real time): then the wall clock wins again. Either way segments start
        # in the order they were recorded.
        follows = self._follows(t)
        if follows is not None and abs(start - follows) <= MAX_DRIFT:
            start = follows
        if self._last_start is not None and start <= self._last_start:
            start = self._last_start + timedelta(microseconds=1)
        self._last_start = start
        rel = self._name(self._channel_id, start)
        self._open = _Open(self._root / rel, rel, self._streams, start, self._options)
        self.failed = None

    def _follows(self, t: float | None) -> datetime | None:
        """Where a key frame at media time ``t`` falls on the last segment's clock, when it
        continues that segment's stream: the same session, nothing left out in between (a
        recording plan's gate leaves seconds out)."""
        if self._last is None or t is None:
            return None
        end, media_end = self._last
        gap = t - media_end
        if not -0.001 <= gap <= CONTIGUOUS_SECONDS:
            return None
        return end + timedelta(seconds=gap)

    def _close(self) -> None:
        seg, self._open = self._open, None
        if seg is None:
            return
        for index, transcoder in seg.transcoders.items() if seg.frames else ():
            try:  # the audio held back, up to the last sample
                seg.container.mux(transcoder.flush(seg.first_time))
            except (OSError, ValueError, av.error.FFmpegError) as exc:
                log.warning("segment %s: the end of audio %s is lost: %s", seg.rel, index, exc)
        try:
            seg.container.close()
        except (OSError, av.error.FFmpegError) as exc:
            log.error("channel %s: closing %s failed: %s", self._channel_id, seg.rel, exc)
        if seg.frames == 0 or seg.first_time is None or seg.last_time is None:
            seg.path.unlink(missing_ok=True)
            return
        span = seg.last_time - seg.first_time + seg.frame_dur
        end = seg.start + timedelta(seconds=float(span))
        self._last = (end, seg.last_time + seg.frame_dur)
        try:
            size = os.path.getsize(seg.path)
        except OSError:
            return
        self._on_segment(
            SegmentClosed(
                channel_id=self._channel_id,
                path=seg.rel,
                start=seg.start,
                end=end,
                bytes=size,
                codec=seg.codec,
                frames=seg.frames,
            )
        )
