"""Fragmented MP4 helpers for live delivery: box framing of a muxer's byte stream, and the
codec string Media Source Extensions need.

The muxer (FFmpeg's, through PyAV) writes ftyp+moov (the init segment), then a moof+mdat pair
per frame; its writes are cut at its I/O buffer size, not at box boundaries, so the bytes are
re-framed here by the boxes' own size fields.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field


@dataclass
class BoxSplitter:
    """Feed muxer output; get back the init segment once, then one media fragment per moof+mdat."""

    _buf: bytearray = field(default_factory=bytearray)
    _init: bytearray = field(default_factory=bytearray)
    _fragment: bytearray = field(default_factory=bytearray)
    init_segment: bytes | None = None

    def feed(self, data: bytes) -> list[bytes]:
        # Live view calls this for every frame: boxes are found by offset in one buffer, a
        # fragment's boxes are joined once, and the buffer is trimmed once per call (a copy
        # per box and per step cost more than the muxing).
        if not self._buf and not self._fragment and self.init_segment is not None:
            whole = _whole_fragment(data)
            if whole:
                return [data]  # the usual case: one write, one fragment, no copy
        buf = self._buf
        buf += data
        out: list[bytes] = []
        pos, end = 0, len(buf)
        while end - pos >= 8:
            size, kind = struct.unpack_from(">I4s", buf, pos)
            header = 8
            if size == 1:
                if end - pos < 16:
                    break
                size = struct.unpack_from(">Q", buf, pos + 8)[0]
                header = 16
            if size < header:
                raise ValueError(f"malformed MP4 box {kind!r} of size {size}")
            if end - pos < size:
                break
            box = memoryview(buf)[pos : pos + size]
            pos += size
            if self.init_segment is None:
                self._init += box
                if kind == b"moov":
                    self.init_segment = bytes(self._init)
                box.release()
                continue
            if kind == b"mdat":
                out.append(b"".join((self._fragment, box)))  # moof (and any other) + mdat
                self._fragment.clear()
            else:
                self._fragment += box
            box.release()
        if pos:
            del buf[:pos]
        return out


def _whole_fragment(data: bytes) -> bool:
    """True when ``data`` is exactly a fragment's boxes ending with its mdat."""
    pos, end = 0, len(data)
    while end - pos >= 8:
        size, kind = struct.unpack_from(">I4s", data, pos)
        if size < 8:  # 64-bit or malformed sizes: the general path decides
            return False
        pos += size
        if kind == b"mdat":
            return bool(pos == end)
    return False


def _h264_codec(extradata: bytes) -> str | None:
    if len(extradata) >= 4 and extradata[0] == 1:  # avcC
        return f"avc1.{extradata[1]:02x}{extradata[2]:02x}{extradata[3]:02x}"
    # Annex B: find the SPS (NAL type 7); profile, constraints and level follow its header.
    i = extradata.find(b"\x00\x00\x01")
    while i != -1 and i + 6 < len(extradata):
        if extradata[i + 3] & 0x1F == 7:
            p, c, lvl = extradata[i + 4], extradata[i + 5], extradata[i + 6]
            return f"avc1.{p:02x}{c:02x}{lvl:02x}"
        i = extradata.find(b"\x00\x00\x01", i + 3)
    return None


def _find_box(data: bytes, path: list[bytes]) -> bytes | None:
    """The payload of the box at ``path`` (e.g. moov/trak/mdia/minf/stbl/stsd)."""
    pos, end = 0, len(data)
    for depth, name in enumerate(path):
        while pos + 8 <= end:
            size, kind = struct.unpack_from(">I4s", data, pos)
            if size < 8:
                return None
            if kind == name:
                start = pos + 8
                if name == b"stsd":
                    start += 8  # full box header and entry count
                elif depth + 1 < len(path) and path[depth + 1] in (b"avcC", b"hvcC"):
                    start += 78  # the visual sample entry's fixed fields
                pos, end = start, pos + size
                break
            pos += size
        else:
            return None
    return data[pos:end]


def _hevc_codec(hvcc: bytes) -> str | None:
    if len(hvcc) < 13:
        return None
    space = "" if hvcc[1] >> 6 == 0 else "ABC"[(hvcc[1] >> 6) - 1]
    tier = "H" if hvcc[1] & 0x20 else "L"
    profile = hvcc[1] & 0x1F
    compat = int.from_bytes(hvcc[2:6], "big")
    compat_rev = int(f"{compat:032b}"[::-1], 2)
    constraints = hvcc[6:12].rstrip(b"\x00")
    level = hvcc[12]
    parts = [f"hvc1.{space}{profile}", f"{compat_rev:x}", f"{tier}{level}"]
    parts += [f"{b:02x}" for b in constraints] or []
    return ".".join(parts)


_STSD = [b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd"]


def codec_string(codec: str, init_segment: bytes, extradata: bytes | None) -> str:
    """RFC 6381 codec parameter for ``MediaSource.isTypeSupported``/``addSourceBuffer``."""
    if codec == "h264":
        found = _h264_codec(extradata or b"")
        if found is None:
            avcc = _find_box(init_segment, [*_STSD, b"avc1", b"avcC"])
            found = _h264_codec(avcc or b"")
        return found or "avc1.640028"
    if codec == "hevc":
        for entry in (b"hvc1", b"hev1"):
            hvcc = _find_box(init_segment, [*_STSD, entry, b"hvcC"])
            if hvcc:
                found = _hevc_codec(hvcc)
                if found:
                    return found
        return "hvc1.1.6.L120.90"
    return codec


def _traks(init_segment: bytes) -> list[bytes]:
    """Every trak box of the init segment's moov, whole (header included)."""
    moov = _find_box(init_segment, [b"moov"])
    out: list[bytes] = []
    pos = 0
    while moov is not None and pos + 8 <= len(moov):
        size, kind = struct.unpack_from(">I4s", moov, pos)
        if size < 8:
            break
        if kind == b"trak":
            out.append(moov[pos : pos + size])
        pos += size
    return out


_TRAK_STSD = [b"trak", b"mdia", b"minf", b"stbl", b"stsd"]


def codec_from_init(init_segment: bytes) -> str | None:
    """The codec string of an init segment's tracks, video first (H.264 or H.265), then AAC
    audio where present (``avc1.640028,mp4a.40.2``): Chromium refuses to append a segment with
    a track the MIME type does not name. None without a video track."""
    video: str | None = None
    audio: str | None = None
    for trak in _traks(init_segment):
        avcc = _find_box(trak, [*_TRAK_STSD, b"avc1", b"avcC"])
        if avcc and video is None:
            video = _h264_codec(avcc)
            continue
        for entry in (b"hvc1", b"hev1"):
            hvcc = _find_box(trak, [*_TRAK_STSD, entry, b"hvcC"])
            if hvcc and video is None:
                video = _hevc_codec(hvcc)
        stsd = _find_box(trak, _TRAK_STSD)
        if stsd is not None and stsd[4:8] == b"mp4a" and audio is None:
            audio = "mp4a.40.2"  # AAC-LC: what cameras send and what the recorder makes
    if video is None:
        return None
    return f"{video},{audio}" if audio else video
