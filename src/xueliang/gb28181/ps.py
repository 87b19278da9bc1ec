"""MPEG-2 Program Stream (ISO/IEC 13818-1 section 2.5) as GB/T 28181 carries it, sans-I/O.

``PsDemuxer`` takes the RTP payloads of one stream, in order, and yields whole frames: video
access units in Annex B with PTS, DTS (90 kHz) and a key-frame flag read from the NAL types,
and audio frames. ``PsMuxer`` (ps_mux.py) does the reverse for the simulator and for cascade.

What devices send, and what this is built to accept:

- Hikvision and most IPCs: every frame starts with a pack header; a key frame also carries a
  system header and a program stream map (PSM) before it; each NAL unit of the frame sits in
  its own PES packet (SPS, PPS, SEI, then the slice, cut into PES of at most 64 KiB). Audio
  comes as one PES per G.711 frame, with or without a pack header of its own.
- FFmpeg (``-f mpeg``): MPEG-1 pack headers, 2 KiB packs, no PSM; PES packets cut anywhere in
  the stream, so one PES may end one frame and begin the next, and a frame starting inside a
  PES has no PTS of its own.

So frames are delimited by the video syntax, not by PES or pack boundaries: a new access unit
begins where H.264 (7.4.1.2.3) or H.265 (7.4.2.4.4) says it does (a delimiter or parameter
set after a slice, or a slice that is the first of its picture). A PES's PTS belongs to the
first access unit that starts in it (2.7.5); frames without one get the previous frame's plus
one frame interval. The codec comes from the PSM (stream_type), never from the RTP payload
type; without a PSM it is recognised from the first parameter set.

After loss the caller says so (``discontinuity``): the broken frame is dropped and parsing
starts again at the next pack header. Garbage where a PS start code should be does the same
on its own; ``feed`` never raises.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

# Program stream start codes (the byte after 00 00 01).
PACK_HEADER = 0xBA
SYSTEM_HEADER = 0xBB
PROGRAM_STREAM_MAP = 0xBC
PRIVATE_STREAM_1 = 0xBD
PADDING_STREAM = 0xBE
PROGRAM_END = 0xB9

VIDEO_ID = 0xE0
AUDIO_ID = 0xC0

# stream_type (PSM) -> (kind, FFmpeg codec name). 0x80 and 0x9B are SVAC (GB/T 25724),
# 0x90-0x99 the ITU audio codecs GB/T 28181 Annex C assigns.
STREAM_TYPES: dict[int, tuple[str, str]] = {
    0x01: ("video", "mpeg1video"),
    0x02: ("video", "mpeg2video"),
    0x03: ("audio", "mp2"),
    0x04: ("audio", "mp2"),
    0x0F: ("audio", "aac"),
    0x10: ("video", "mpeg4"),
    0x1B: ("video", "h264"),
    0x24: ("video", "hevc"),
    0x80: ("video", "svac"),
    0x90: ("audio", "pcm_alaw"),
    0x91: ("audio", "pcm_mulaw"),
    0x92: ("audio", "g722_1"),
    0x93: ("audio", "g723_1"),
    0x99: ("audio", "g729"),
    0x9B: ("audio", "svac_audio"),
}
CODEC_STREAM_TYPES = {codec: st for st, (_, codec) in STREAM_TYPES.items() if st != 0x04}

# A buffer this large without one complete PS unit in it is not a program stream.
MAX_BUFFER = 1 << 20
# A frame larger than this (an 8K key frame is a few MB) means the stream is broken.
MAX_FRAME = 16 << 20
# Frame interval assumed before two timestamps have been seen (25 fps, the GB default).
DEFAULT_VIDEO_INTERVAL = 3600
PTS_WRAP = 1 << 33
_START = b"\x00\x00\x01"
_H264_PROFILES = frozenset((66, 77, 88, 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134))


@dataclass(frozen=True, slots=True)
class Frame:
    """One access unit (video, Annex B) or one audio PES payload; times in 90 kHz ticks,
    unwrapped past the 33-bit PTS range so they only grow within a stream."""

    stream_id: int
    kind: str  # "video" | "audio"
    codec: str  # FFmpeg codec name: h264, hevc, pcm_alaw, aac, ...
    pts: int
    dts: int
    keyframe: bool
    data: bytes


@dataclass(frozen=True, slots=True)
class PsStream:
    stream_id: int
    kind: str
    codec: str


@dataclass(slots=True)
class DemuxStats:
    frames: int = 0
    resyncs: int = 0  # garbage where a PS unit should start, skipped to the next pack header
    discontinuities: int = 0  # losses reported by the caller
    dropped_frames: int = 0  # partial frames thrown away after a loss or garbage
    bad_pes: int = 0  # PES packets whose header does not parse
    skipped_pes: int = 0  # PES of streams not (yet) known: before the PSM, or unsupported
    untimed: int = 0  # frames with no timestamp and none before them to derive one from


def _timestamp(b: bytes | bytearray, i: int) -> int:
    """The 33-bit PTS/DTS in the 5 bytes at ``i`` (marker bits ignored)."""
    return (
        ((b[i] & 0x0E) << 29)
        | (b[i + 1] << 22)
        | ((b[i + 2] & 0xFE) << 14)
        | (b[i + 3] << 7)
        | (b[i + 4] >> 1)
    )


class _Clock:
    """Fills in missing timestamps and unwraps the 33-bit ones, per stream."""

    __slots__ = ("interval", "last_dts", "last_pts", "wrap")

    def __init__(self, interval: int) -> None:
        self.interval = interval
        self.last_pts: int | None = None
        self.last_dts: int | None = None
        self.wrap = 0

    def stamp(self, pts: int | None, dts: int | None, duration: int) -> tuple[int, int] | None:
        last_dts = self.last_dts
        if pts is None:
            if last_dts is None or self.last_pts is None:
                return None
            step = duration or self.interval
            pts, dts = self.last_pts + step, last_dts + step
        else:
            if dts is None:
                dts = pts
            pts += self.wrap
            dts += self.wrap
            if last_dts is not None:
                if dts < last_dts - (PTS_WRAP >> 1):
                    self.wrap += PTS_WRAP
                    pts += PTS_WRAP
                    dts += PTS_WRAP
                step = dts - last_dts
                if 0 < step < 900_000 and not duration:
                    self.interval = step
        self.last_pts, self.last_dts = pts, dts
        return pts, dts


class _Track:
    """One elementary stream's frames."""

    def __init__(self, stream_id: int, kind: str, codec: str, stats: DemuxStats) -> None:
        self.stream_id = stream_id
        self.kind = kind
        self.codec = codec
        self.stats = stats
        self.clock = _Clock(DEFAULT_VIDEO_INTERVAL if kind == "video" else 0)

    def push(
        self, payload: bytes, pts: int | None, dts: int | None, out: list[Frame], key_hint: bool
    ) -> None:
        raise NotImplementedError

    def end_frame(self, out: list[Frame]) -> None:
        """The frame being gathered is complete (an RTP marker, or the end of the stream)."""

    def drop(self) -> int:
        """Throw away a partial frame after loss; returns how many frames were dropped."""
        return 0

    def _emit(
        self, out: list[Frame], data: bytes, pts: int | None, dts: int | None, key: bool
    ) -> bool:
        duration = 0
        if self.codec in ("pcm_alaw", "pcm_mulaw"):
            duration = len(data) * 45 // 4  # 8000 samples/s, one byte each, in 90 kHz ticks
        stamped = self.clock.stamp(pts, dts, duration)
        if stamped is None:
            self.stats.untimed += 1
            return False
        out.append(Frame(self.stream_id, self.kind, self.codec, stamped[0], stamped[1], key, data))
        return True


class _PesTrack(_Track):
    """Audio, and video in codecs whose syntax is not parsed here (SVAC, MPEG-4): a PES with a
    new PTS starts a frame; PES without one, or with the same, continue it. Key frames are
    the ones a PSM came before (how Hikvision marks them). Audio frames go out at once."""

    def __init__(self, stream_id: int, kind: str, codec: str, stats: DemuxStats) -> None:
        super().__init__(stream_id, kind, codec, stats)
        self.parts: list[bytes] = []
        self.size = 0
        self.pts: int | None = None
        self.dts: int | None = None
        self.key = False

    def push(
        self, payload: bytes, pts: int | None, dts: int | None, out: list[Frame], key_hint: bool
    ) -> None:
        if self.kind == "audio":
            self._emit(out, payload, pts, dts, True)
            return
        if not self.parts or (pts is not None and pts != self.pts):
            self.end_frame(out)
            self.pts, self.dts, self.key = pts, dts, key_hint
        self.parts.append(payload)
        self.size += len(payload)
        if self.size > MAX_FRAME:
            self.stats.dropped_frames += self.drop()

    def end_frame(self, out: list[Frame]) -> None:
        if self.parts:
            self._emit(out, b"".join(self.parts), self.pts, self.dts, self.key)
            self.parts = []
            self.size = 0

    def drop(self) -> int:
        dropped = 1 if self.parts else 0
        self.parts = []
        self.size = 0
        return dropped


class _AnnexBTrack(_Track):
    """H.264 or H.265: access units found from the NAL unit types (see the module doc)."""

    def __init__(self, stream_id: int, codec: str, stats: DemuxStats) -> None:
        super().__init__(stream_id, "video", codec, stats)
        self.hevc = codec == "hevc"
        self.au = bytearray()  # stream bytes from the open access unit's first byte on
        self.base = 0  # position in the elementary stream of au[0]
        self.scan = 0  # where in au the next start code search begins
        self.open = False
        self.vcl = False
        self.key = False
        self.pts: int | None = None
        self.dts: int | None = None
        # (stream position where a PES payload began, its PTS, its DTS)
        self.marks: deque[tuple[int, int | None, int | None]] = deque()

    def push(
        self, payload: bytes, pts: int | None, dts: int | None, out: list[Frame], key_hint: bool
    ) -> None:
        au = self.au
        self.marks.append((self.base + len(au), pts, dts))
        au += payload
        size = len(au)
        if size > MAX_FRAME:
            # No picture is this big: the stream is not what its PSM says, or a start
            # code was lost. Start again at the next access unit.
            self.stats.dropped_frames += self.drop()
            return
        hevc = self.hevc
        i = au.find(_START, self.scan)
        while i >= 0:
            h = i + 3
            if h + 3 > size:  # the NAL header and first slice byte are not here yet
                self.scan = i
                return
            b = au[h]
            if hevc:
                t = (b >> 1) & 0x3F
                vcl = t < 32
                starts = (vcl and au[h + 2] & 0x80) or t in _HEVC_AU_START
                key = 16 <= t <= 23
            else:
                t = b & 0x1F
                vcl = 1 <= t <= 5
                # first_mb_in_slice is ue(v): 0 is coded as a single 1 bit.
                starts = (vcl and au[h + 1] & 0x80) or t in _H264_AU_START
                key = t == 5
            if starts and (self.vcl or not self.open):
                cut = i - 1 if i and au[i - 1] == 0 else i
                if self.open:
                    self._emit(out, bytes(au[:cut]), self.pts, self.dts, self.key)
                del au[:cut]
                self.base += cut
                i -= cut
                size -= cut
                self.pts, self.dts = self._take_mark(self.base + i)
                self.open = True
                self.vcl = self.key = False
            if self.open:
                if vcl:
                    self.vcl = True
                if key:
                    self.key = True
            i = au.find(_START, i + 3)
        self.scan = max(0, size - 2)
        if not self.open:
            while len(self.marks) > 8:
                self.marks.popleft()
            # Nothing to keep before the first access unit (after a loss, or the stream
            # joined mid-frame): hold just the bytes a split start code may need.
            keep = min(size, 3)
            del au[: size - keep]
            self.base += size - keep
            self.scan = 0

    def _take_mark(self, position: int) -> tuple[int | None, int | None]:
        marks = self.marks
        found: tuple[int, int | None, int | None] | None = None
        while marks and marks[0][0] <= position:
            found = marks.popleft()
        if found is None:
            return None, None
        return found[1], found[2]

    def end_frame(self, out: list[Frame]) -> None:
        if self.open and self.vcl:
            self._emit(out, bytes(self.au), self.pts, self.dts, self.key)
            self.base += len(self.au)
            self.au.clear()
            self.scan = 0
            self.open = self.vcl = self.key = False

    def drop(self) -> int:
        dropped = 1 if self.open and self.au else 0
        self.base += len(self.au)
        self.au.clear()
        self.marks.clear()
        self.scan = 0
        self.open = self.vcl = self.key = False
        return dropped


_H264_AU_START = frozenset((6, 7, 8, 9, 14, 15, 16, 17, 18))
_HEVC_AU_START = frozenset((32, 33, 34, 35, 39, 41, 42, 43, 44, *range(48, 56)))


def sniff_video_codec(payload: bytes | bytearray) -> str | None:
    """H.264 or H.265 from the first parameter set or delimiter in ``payload``, if any."""
    i = payload.find(_START)
    while 0 <= i < len(payload) - 5:
        b, c = payload[i + 3], payload[i + 4]
        if b in (0x40, 0x42) and c == 0x01:
            return "hevc"
        if (b & 0x9F) == 0x07 and c in _H264_PROFILES:
            return "h264"
        if b == 0x09 and (c & 0x1F) == 0x10:
            return "h264"
        i = payload.find(_START, i + 3)
    return None


class PsDemuxer:
    """Feed it RTP payloads in order; it returns the frames completed by each.

    ``discontinuity()`` after packets were lost; ``end_frame()`` where the sender marks the
    end of a frame (the RTP marker bit; it saves a frame of latency with devices that set it
    correctly, and is optional); ``flush()`` at the end of the stream.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._syncing = False  # skipping to the next pack header
        self._tracks: dict[int, _Track] = {}
        self._psm: dict[int, int] = {}  # stream_id -> stream_type
        self._psm_seen = False
        self._sniffed = False  # a video stream was recognised without a PSM: expect none
        self._key_hint = False  # a PSM came since the last video PES (Hikvision: key frame)
        self.stats = DemuxStats()

    @property
    def streams(self) -> list[PsStream]:
        return [PsStream(t.stream_id, t.kind, t.codec) for t in self._tracks.values()]

    @property
    def stream_types(self) -> dict[int, int]:
        """The last PSM's stream_id -> stream_type map."""
        return dict(self._psm)

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        out: list[Frame] = []
        self._parse(out, final=False)
        return out

    def _parse(self, out: list[Frame], *, final: bool) -> None:
        buf = self._buffer
        size = len(buf)
        pos = 0
        while True:
            if self._syncing:
                found = buf.find(b"\x00\x00\x01\xba", pos)
                if found < 0:
                    pos = max(pos, size - 3)
                    break
                pos = found
                self._syncing = False
            if size - pos < 6:
                break
            if buf[pos] or buf[pos + 1] or buf[pos + 2] != 1:
                self._garbage()
                pos += 1
                continue
            code = buf[pos + 3]
            if code == PACK_HEADER:
                if size - pos < 14:
                    break
                b4 = buf[pos + 4]
                if b4 & 0xC0 == 0x40:  # MPEG-2
                    end = pos + 14 + (buf[pos + 13] & 7)
                elif b4 & 0xF0 == 0x20:  # MPEG-1
                    end = pos + 12
                else:
                    self._garbage()
                    pos += 1
                    continue
                if end > size:
                    break
                pos = end
                continue
            if code == PROGRAM_END:
                pos += 4
                continue
            if code < PROGRAM_END:
                self._garbage()
                pos += 1
                continue
            end = pos + 6 + ((buf[pos + 4] << 8) | buf[pos + 5])
            if end == pos + 6 and code >= AUDIO_ID:
                # PES_packet_length 0 (allowed in TS, sent by a few devices): the PES runs to
                # the next PS start code; no NAL header can be 0xB9 or above.
                end = self._unbounded_end(buf, pos + 6)
                if end < 0:
                    if size - pos > MAX_BUFFER:
                        self._garbage()
                        pos += 1
                        continue
                    end = size + 1
            if end > size:
                if final and code >= AUDIO_ID:
                    # Packets after this were lost: what did arrive of this PES may begin
                    # the next picture, which says the one before it is complete.
                    self._pes(buf, pos, size, code, out, truncated=True)
                break
            if code >= AUDIO_ID or code == PRIVATE_STREAM_1:
                self._pes(buf, pos, end, code, out)
            elif code == PROGRAM_STREAM_MAP:
                self._parse_psm(buf, pos + 6, end)
            pos = end
        if pos:
            del buf[:pos]
        if len(buf) > MAX_BUFFER:
            self._garbage()
            buf.clear()

    def discontinuity(self) -> list[Frame]:
        """Packets were lost: drop what was being assembled, resume at the next pack header.

        Returns the frames that turn out complete: a picture is known to be whole only when
        the next one starts, and the start of the next one may be what arrived before the
        gap."""
        out: list[Frame] = []
        if not self._syncing:
            self._parse(out, final=True)
        self.stats.discontinuities += 1
        self._buffer.clear()
        self._drop_partial()
        self._syncing = True
        return out

    def end_frame(self) -> list[Frame]:
        out: list[Frame] = []
        for track in self._tracks.values():
            if track.kind == "video":
                track.end_frame(out)
        self.stats.frames += len(out)
        return out

    def flush(self) -> list[Frame]:
        """The stream ended: the frames still being gathered are complete."""
        out: list[Frame] = []
        for track in self._tracks.values():
            track.end_frame(out)
        self.stats.frames += len(out)
        return out

    def _garbage(self) -> None:
        self.stats.resyncs += 1
        self._drop_partial()
        self._syncing = True

    def _drop_partial(self) -> None:
        for track in self._tracks.values():
            self.stats.dropped_frames += track.drop()

    @staticmethod
    def _unbounded_end(buf: bytearray, start: int) -> int:
        i = buf.find(_START, start)
        while 0 <= i < len(buf) - 3:
            if buf[i + 3] >= PROGRAM_END:
                return i
            i = buf.find(_START, i + 3)
        return -1

    def _pes(
        self,
        buf: bytearray,
        pos: int,
        end: int,
        code: int,
        out: list[Frame],
        *,
        truncated: bool = False,
    ) -> None:
        p = pos + 6
        pts: int | None = None
        dts: int | None = None
        if p >= end:
            return
        b = buf[p]
        if b & 0xC0 == 0x80:  # MPEG-2 PES header
            if p + 3 > end:
                self.stats.bad_pes += 1
                return
            flags = buf[p + 1]
            payload = p + 3 + buf[p + 2]
            if payload > end:
                self.stats.bad_pes += 1
                return
            if flags & 0x80 and payload - p >= 8:
                pts = _timestamp(buf, p + 3)
                if flags & 0x40 and payload - p >= 13:
                    dts = _timestamp(buf, p + 8)
        else:  # MPEG-1 PES header (FFmpeg's -f mpeg)
            q = p
            while q < end and buf[q] == 0xFF and q - p < 16:
                q += 1
            if q + 2 <= end and buf[q] & 0xC0 == 0x40:
                q += 2  # STD buffer size
            if q >= end:
                self.stats.bad_pes += 1
                return
            b = buf[q] & 0xF0
            if b == 0x20 and q + 5 <= end:
                pts = _timestamp(buf, q)
                q += 5
            elif b == 0x30 and q + 10 <= end:
                pts = _timestamp(buf, q)
                dts = _timestamp(buf, q + 5)
                q += 10
            elif buf[q] == 0x0F:
                q += 1
            else:
                self.stats.bad_pes += 1
                return
            payload = q
        if payload >= end:
            return
        track = self._tracks.get(code)
        if truncated and (track is None or track.kind != "video"):
            return
        if track is None:
            track = self._new_track(code, buf, payload, end)
            if track is None:
                self.stats.skipped_pes += 1
                return
        before = len(out)
        track.push(bytes(buf[payload:end]), pts, dts, out, self._key_hint)
        if track.kind == "video":
            self._key_hint = False
        self.stats.frames += len(out) - before

    def _new_track(self, code: int, buf: bytearray, start: int, end: int) -> _Track | None:
        stream_type = self._psm.get(code)
        if stream_type is not None:
            kind, codec = STREAM_TYPES.get(stream_type, ("", ""))
            if not kind:
                return None
        elif code >= VIDEO_ID:
            sniffed = sniff_video_codec(buf[start:end])
            if sniffed is None:
                return None
            kind, codec = "video", sniffed
            self._sniffed = True
        elif AUDIO_ID <= code < VIDEO_ID and (self._psm_seen or self._sniffed):
            # MPEG audio by its stream_id; before any PSM, wait for one (a GB device sends
            # it with the first key frame, and says there what the audio really is).
            kind, codec = "audio", "mp2"
        else:
            return None
        track: _Track
        if codec in ("h264", "hevc"):
            track = _AnnexBTrack(code, codec, self.stats)
        else:
            track = _PesTrack(code, kind, codec, self.stats)
        self._tracks[code] = track
        return track

    def _parse_psm(self, buf: bytearray, p: int, end: int) -> None:
        # Devices get the lengths in here wrong often enough that every entry is bounded by
        # the packet itself, and the CRC is not checked.
        self._key_hint = True
        if p + 6 > end:
            return
        info_length = (buf[p + 2] << 8) | buf[p + 3]
        q = p + 4 + info_length
        if q + 2 > end:
            return
        map_end = min(q + 2 + ((buf[q] << 8) | buf[q + 1]), end)
        q += 2
        entries: dict[int, int] = {}
        while q + 4 <= map_end:
            stream_type, stream_id = buf[q], buf[q + 1]
            q += 4 + ((buf[q + 2] << 8) | buf[q + 3])
            entries[stream_id] = stream_type
        if not entries:
            return
        self._psm_seen = True
        for stream_id, stream_type in entries.items():
            if self._psm.get(stream_id) != stream_type and stream_id in self._tracks:
                # The stream changed codec (a device reconfigured mid-stream): start it anew.
                self.stats.dropped_frames += self._tracks.pop(stream_id).drop()
        self._psm = entries
