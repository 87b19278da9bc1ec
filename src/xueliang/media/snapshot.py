"""Snapshots: one picture of a channel as a JPEG, live or at a recorded time.

Live: the newest key frame the channel's hub holds is decoded (a key frame decodes on its own,
so this costs one frame's decode however long the GOP) and encoded with FFmpeg's MJPEG encoder.
The picture is therefore up to one GOP old; its time is answered beside it.

At a recorded time: the segment covering that time is opened at the key frame before it and
decoded forward to the last frame shown at or before that time.

Nothing here needs Pillow: PyAV decodes, converts to full-range YUV and encodes the JPEG.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import av
from av.video.codeccontext import VideoCodecContext
from av.video.frame import VideoFrame

from xueliang.access.audit import AuditLog
from xueliang.access.permissions import Permission
from xueliang.access.principal import Principal
from xueliang.core.errors import NotFound
from xueliang.media.hub import KeyFrame
from xueliang.media.playback import SegmentReader, utc
from xueliang.media.segments import SegmentIndex
from xueliang.registry.common import visible_channel
from xueliang.store.db import Database

log = logging.getLogger(__name__)

JPEG_QUALITY = 3  # MJPEG qscale: 2 (best) … 31


@dataclass(frozen=True, slots=True)
class Snapshot:
    jpeg: bytes
    at: datetime  # when the picture was taken (arrival of a live key frame, or recorded time)


def encode_jpeg(frame: VideoFrame) -> bytes:
    enc = av.CodecContext.create("mjpeg", "w")
    enc.width, enc.height = frame.width, frame.height
    enc.pix_fmt = "yuvj420p"
    enc.time_base = Fraction(1, 25)
    enc.qscale = True
    enc.global_quality = JPEG_QUALITY * 118  # FF_QP2LAMBDA
    packets = enc.encode(frame.reformat(format="yuvj420p")) + enc.encode(None)
    if not packets:
        raise RuntimeError("the JPEG encoder gave nothing")
    return bytes(packets[0])


def decode_keyframe(key: KeyFrame) -> VideoFrame | None:
    """Decode one key frame with a decoder set up from its stream's parameters."""
    dec = av.CodecContext.create(key.codec, "r")
    if not isinstance(dec, VideoCodecContext):
        return None
    if key.extradata:
        dec.extradata = key.extradata
    packet = av.Packet(key.data)
    packet.is_keyframe = True
    frames = dec.decode(packet) + dec.decode(None)
    return frames[-1] if frames else None


def decode_at(reader: SegmentReader, at: datetime) -> tuple[VideoFrame, datetime] | None:
    """The last frame of the reader's range shown at or before ``at``, and its recorded time."""
    dec = reader.video.codec_context
    tb = reader.video.time_base
    limit = Fraction((at - reader.seg.start) // timedelta(microseconds=1), 1_000_000)
    best: tuple[Fraction, VideoFrame] | None = None

    def consider(frames: list[VideoFrame]) -> None:
        nonlocal best
        for frame in frames:
            if frame.pts is None or tb is None:
                shown = limit  # untimed: take the latest decoded
            else:
                shown = Fraction(frame.pts) * tb - reader.origin
            # A frame after ``at`` only while nothing at or before it was seen (clock jitter at
            # the start of a segment).
            if best is None or best[0] > limit or limit >= shown >= best[0]:
                best = (shown, frame)

    for packet, _t in reader.packets():
        consider(dec.decode(packet))
    consider(dec.decode(None))
    if best is None:
        return None
    return best[1], reader.seg.start + timedelta(seconds=float(best[0]))


class SnapshotService:
    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        segments: SegmentIndex,
        latest_keyframe: Callable[[str], KeyFrame | None],
    ) -> None:
        self._db = db
        self._audit = audit
        self._segments = segments
        self._latest_keyframe = latest_keyframe  # asks the channel's media worker

    def take(self, principal: Principal, channel_id: str, at: datetime | None = None) -> Snapshot:
        """A JPEG of the channel now (``at`` None) or at a recorded time; audited."""
        principal.require(Permission.VIDEO_SNAPSHOT)
        if at is not None:
            at = utc(at, "at")
        with self._db.read() as s:
            visible_channel(s, principal, channel_id)
        snap = self._live(channel_id) if at is None else self._recorded(channel_id, at)
        with self._db.transaction() as s:
            self._audit.append(
                s,
                principal,
                "video.snapshot",
                target=f"channel:{channel_id}",
                detail={"live": at is None, "at": snap.at.isoformat()},
            )
        return snap

    def _live(self, channel_id: str) -> Snapshot:
        key = self._latest_keyframe(channel_id)
        if key is None:
            raise NotFound(f"channel {channel_id} has no live picture (not online or not pulled)")
        try:
            frame = decode_keyframe(key)
        except av.error.FFmpegError as exc:
            log.warning("channel %s: the live key frame does not decode: %s", channel_id, exc)
            frame = None
        if frame is None:
            raise NotFound(f"channel {channel_id} has no decodable live picture yet")
        return Snapshot(encode_jpeg(frame), datetime.fromtimestamp(key.wallclock, UTC))

    def _recorded(self, channel_id: str, at: datetime) -> Snapshot:
        tick = timedelta(microseconds=1)
        if at >= datetime.max.replace(tzinfo=UTC) - tick:
            raise NotFound(f"nothing of channel {channel_id} is recorded at {at.isoformat()}")
        segments = [
            seg
            for seg in self._segments.covering(channel_id, at, at + tick)
            if seg.start <= at < seg.end
        ]
        for seg in reversed(segments):  # the newest recording of that moment
            try:
                reader = SegmentReader(seg, at, at + tick)
            except (OSError, ValueError, av.error.FFmpegError) as exc:
                log.warning("recording %s (%s) cannot be read: %s", seg.id, seg.path, exc)
                continue
            try:
                found = decode_at(reader, at)
            except av.error.FFmpegError as exc:
                log.warning("recording %s does not decode: %s", seg.id, exc)
                found = None
            finally:
                reader.close()
            if found is not None:
                frame, shown = found
                return Snapshot(encode_jpeg(frame), shown)
        raise NotFound(f"nothing of channel {channel_id} is recorded at {at.isoformat()}")
