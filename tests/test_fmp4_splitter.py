"""Re-framing a muxer's byte stream into the init segment and one fragment per moof+mdat,
whatever sizes the muxer's writes come in."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xueliang.media.fmp4 import BoxSplitter


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def large_box(kind: bytes, payload: bytes) -> bytes:  # 64-bit size form
    return struct.pack(">I4sQ", 1, kind, 16 + len(payload)) + payload


INIT = box(b"ftyp", b"isom" * 4) + box(b"moov", b"m" * 300)
FRAGMENTS = [
    box(b"moof", bytes([i]) * 90) + box(b"mdat", bytes([i]) * (500 + 977 * i)) for i in range(12)
] + [box(b"moof", b"L" * 90) + large_box(b"mdat", b"x" * 3000)]
STREAM = INIT + b"".join(FRAGMENTS)


@given(st.lists(st.integers(min_value=1, max_value=4000), max_size=60))
def test_any_write_sizes_give_the_same_boxes(cuts: list[int]) -> None:
    splitter = BoxSplitter()
    out: list[bytes] = []
    pos = 0
    for n in cuts:
        out += splitter.feed(STREAM[pos : pos + n])
        pos += n
    out += splitter.feed(STREAM[pos:])
    assert splitter.init_segment == INIT
    assert out == FRAGMENTS


def test_a_malformed_box_size_is_an_error() -> None:
    splitter = BoxSplitter()
    with pytest.raises(ValueError, match="malformed MP4 box"):
        splitter.feed(struct.pack(">I4s", 3, b"moov"))


def test_a_write_of_one_whole_fragment_passes_without_a_copy() -> None:
    """Live view's usual case (FFmpeg writes each frame's fragment in one call): the bytes are
    passed on as they are; anything else (a fragment cut short, or two at once) takes the
    general path and still comes out whole."""
    splitter = BoxSplitter()
    assert splitter.feed(INIT) == []
    one = FRAGMENTS[3]
    assert splitter.feed(one)[0] is one
    assert splitter.feed(FRAGMENTS[4] + FRAGMENTS[5]) == FRAGMENTS[4:6]
    assert splitter.feed(FRAGMENTS[6][:50]) == []
    assert splitter.feed(FRAGMENTS[6][50:]) == [FRAGMENTS[6]]
    assert splitter.feed(FRAGMENTS[-1]) == [FRAGMENTS[-1]]  # 64-bit mdat size
