"""MPEG-PS syntax (ISO/IEC 13818-1 section 2.5): start codes, stream ids, the PSM's stream_type
table, and the 33-bit PTS/DTS field of a PES header. Shared by the demuxer and ps_mux.py."""

from __future__ import annotations

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

PTS_WRAP = 1 << 33
_START = b"\x00\x00\x01"


def _timestamp(b: bytes | bytearray, i: int) -> int:
    """The 33-bit PTS/DTS in the 5 bytes at ``i`` (marker bits ignored)."""
    return (
        ((b[i] & 0x0E) << 29)
        | (b[i + 1] << 22)
        | ((b[i + 2] & 0xFE) << 14)
        | (b[i + 3] << 7)
        | (b[i + 4] >> 1)
    )
