"""Frame assembly, one track per elementary stream: PES payloads in, whole frames out. Video in
H.264/H.265 is cut into access units by its NAL unit types; other codecs are framed by PTS."""

from __future__ import annotations

from collections import deque

from xueliang.gb28181.ps.clock import _Clock
from xueliang.gb28181.ps.frames import DemuxStats, Frame
from xueliang.gb28181.ps.nal import _H264_AU_START, _HEVC_AU_START
from xueliang.gb28181.ps.syntax import _START

# A frame larger than this (an 8K key frame is a few MB) means the stream is broken.
MAX_FRAME = 16 << 20
# Frame interval assumed before two timestamps have been seen (25 fps, the GB default).
DEFAULT_VIDEO_INTERVAL = 3600


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
    """H.264 or H.265: access units found from the NAL unit types (see the package doc)."""

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
