"""H.264 and H.265 NAL unit types: which ones begin an access unit, and recognising the codec
from the first parameter set when there is no PSM to name it."""

from __future__ import annotations

from xueliang.gb28181.ps.syntax import _START

_H264_PROFILES = frozenset((66, 77, 88, 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134))
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
