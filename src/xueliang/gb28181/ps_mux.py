"""MPEG-2 Program Stream muxer (ISO 13818-1) for GB/T 28181: frames in, PS bytes out, laid out
as devices do it (a pack per frame; system header and PSM before key frames; PES of at most
64 KiB). Used by the device simulator and, later, cascade. The demuxer is the ps package.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from itertools import pairwise

from xueliang.gb28181.ps import (
    _START,
    AUDIO_ID,
    CODEC_STREAM_TYPES,
    PTS_WRAP,
    VIDEO_ID,
    Frame,
)


def _crc32_mpeg(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if crc & 0x80000000 else crc << 1
    return crc


def _encode_timestamp(prefix: int, ts: int) -> bytes:
    ts &= PTS_WRAP - 1
    return bytes(
        (
            (prefix << 4) | ((ts >> 29) & 0x0E) | 1,
            (ts >> 22) & 0xFF,
            ((ts >> 14) & 0xFE) | 1,
            (ts >> 7) & 0xFF,
            ((ts << 1) & 0xFE) | 1,
        )
    )


# Largest PES payload: the 16-bit length counts the 3 header bytes and the timestamps too.
_MAX_PES = 0xFFFF - 3 - 10


@dataclass
class PsMuxer:
    """Frames in, PS bytes out, laid out the way GB/T 28181 devices do it (see the module doc):
    one pack per frame, system header and PSM before key frames, one PES per NAL unit, each
    cut to fit 64 KiB. The bytes of one ``mux`` call are what a sender puts into one RTP
    frame (``RtpPacketizer``)."""

    video_codec: str | None = "h264"
    audio_codec: str | None = None
    mux_rate: int = 4_000_000 // 400  # units of 50 bytes/s: 4 Mbit/s by default
    per_nal: bool = True
    _version: int = field(default=0, init=False)
    _announced: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        for codec in (self.video_codec, self.audio_codec):
            if codec is not None and codec not in CODEC_STREAM_TYPES:
                raise ValueError(f"PS: no stream_type for codec {codec!r}")

    def pack_header(self, scr: int) -> bytes:
        scr &= PTS_WRAP - 1
        rate = self.mux_rate & 0x3FFFFF
        return b"\x00\x00\x01\xba" + bytes(
            (
                0x44 | ((scr >> 27) & 0x38) | ((scr >> 28) & 0x03),
                (scr >> 20) & 0xFF,
                ((scr >> 12) & 0xF8) | 0x04 | ((scr >> 13) & 0x03),
                (scr >> 5) & 0xFF,
                ((scr << 3) & 0xF8) | 0x04,
                0x01,
                rate >> 14,
                (rate >> 6) & 0xFF,
                ((rate & 0x3F) << 2) | 0x03,
                0xF8,
            )
        )

    def system_header(self) -> bytes:
        rate = self.mux_rate & 0x3FFFFF
        streams = b""
        if self.video_codec:
            streams += bytes((VIDEO_ID, 0xE0 | 0x20 | (1024 >> 8), 1024 & 0xFF))
        if self.audio_codec:
            streams += bytes((AUDIO_ID, 0xC0, 32))
        body = (
            bytes(
                (
                    0x80 | (rate >> 15),
                    (rate >> 7) & 0xFF,
                    ((rate & 0x7F) << 1) | 1,
                    (1 if self.audio_codec else 0) << 2,
                    0xE0 | (1 if self.video_codec else 0),
                    0x7F,
                )
            )
            + streams
        )
        return b"\x00\x00\x01\xbb" + struct.pack("!H", len(body)) + body

    def program_stream_map(self) -> bytes:
        entries = b""
        if self.video_codec:
            entries += bytes((CODEC_STREAM_TYPES[self.video_codec], VIDEO_ID, 0, 0))
        if self.audio_codec:
            entries += bytes((CODEC_STREAM_TYPES[self.audio_codec], AUDIO_ID, 0, 0))
        body = bytes((0xA0 | self._version, 0xFF, 0, 0)) + struct.pack("!H", len(entries))
        body += entries
        head = b"\x00\x00\x01\xbc" + struct.pack("!H", len(body) + 4) + body
        return head + struct.pack("!I", _crc32_mpeg(head))

    def mux(self, frame: Frame) -> bytes:
        """One frame's PS bytes. ``frame.kind`` picks the stream; pts/dts in 90 kHz."""
        if frame.kind == "video":
            if not self.video_codec:
                raise ValueError("PS: this muxer has no video stream")
            parts = [self.pack_header(frame.dts)]
            if frame.keyframe or not self._announced:
                parts += (self.system_header(), self.program_stream_map())
                self._announced = True
            units = _nal_units(frame.data) if self.per_nal else [frame.data]
            first = True
            for unit in units:
                for start in range(0, len(unit), _MAX_PES):
                    chunk = unit[start : start + _MAX_PES]
                    parts.append(self._pes(VIDEO_ID, chunk, frame, timed=first))
                    first = False
            return b"".join(parts)
        if frame.kind == "audio":
            if not self.audio_codec:
                raise ValueError("PS: this muxer has no audio stream")
            parts = [self.pack_header(frame.dts)]
            if not self._announced:
                # Whatever comes first carries the PSM: a reader learns the audio codec
                # from it, not from the stream id (which says MPEG audio).
                parts += (self.system_header(), self.program_stream_map())
                self._announced = True
            for start in range(0, len(frame.data), _MAX_PES):
                chunk = frame.data[start : start + _MAX_PES]
                parts.append(self._pes(AUDIO_ID, chunk, frame, timed=start == 0))
            return b"".join(parts)
        raise ValueError(f"PS: unknown frame kind {frame.kind!r}")

    @staticmethod
    def _pes(stream_id: int, chunk: bytes, frame: Frame, *, timed: bool) -> bytes:
        if not timed:
            header = b"\x80\x00\x00"
        elif frame.dts != frame.pts:
            header = (
                b"\x80\xc0\x0a"
                + _encode_timestamp(0x3, frame.pts)
                + _encode_timestamp(0x1, frame.dts)
            )
        else:
            header = b"\x80\x80\x05" + _encode_timestamp(0x2, frame.pts)
        length = len(header) + len(chunk)
        return bytes((0, 0, 1, stream_id, length >> 8, length & 0xFF)) + header + chunk

    def end(self) -> bytes:
        """MPEG_program_end_code, for a file; a live stream just stops."""
        return b"\x00\x00\x01\xb9"


def _nal_units(data: bytes) -> list[bytes]:
    """An Annex B access unit cut before each start code (a 4-byte one keeps its zero)."""
    cuts = []
    i = data.find(_START)
    while i >= 0:
        cuts.append(i - 1 if i and data[i - 1] == 0 else i)
        i = data.find(_START, i + 3)
    if not cuts or cuts[0] != 0:
        cuts.insert(0, 0)
    cuts.append(len(data))
    return [data[a:b] for a, b in pairwise(cuts) if b > a]
