from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xueliang.gb28181.errors import ParseError
from xueliang.gb28181.rtp import (
    Lost,
    Received,
    Rfc4571Decoder,
    RtpEvent,
    RtpPacket,
    RtpPacketizer,
    RtpReceiver,
    SsrcChanged,
    frame_rfc4571,
)


def pkt(seq: int, ssrc: int = 0x11223344, payload: bytes = b"x", ts: int = 0) -> RtpPacket:
    return RtpPacket(
        payload_type=96, sequence=seq & 0xFFFF, timestamp=ts, ssrc=ssrc, payload=payload
    )


def received(events: list[RtpEvent]) -> list[int]:
    return [e.packet.sequence for e in events if isinstance(e, Received)]


# --- packet --------------------------------------------------------------------------------


def test_parse_known_bytes() -> None:
    # V=2 P=1 X=1 CC=1, M=1 PT=96, seq 0x1234, ts 0xDEADBEEF, SSRC 0x0BADCAFE, one CSRC,
    # extension profile 0xBEDE with one word, payload "PS", 3 padding bytes.
    data = (
        bytes((0xB1, 0xE0))
        + struct.pack("!HII", 0x1234, 0xDEADBEEF, 0x0BADCAFE)
        + struct.pack("!I", 7)
        + struct.pack("!HH", 0xBEDE, 1)
        + b"abcd"
        + b"PS"
        + b"\x00\x00\x03"
    )
    p = RtpPacket.parse(data)
    assert (p.marker, p.payload_type, p.sequence) == (True, 96, 0x1234)
    assert (p.timestamp, p.ssrc, p.csrcs) == (0xDEADBEEF, 0x0BADCAFE, (7,))
    assert p.extension == (0xBEDE, b"abcd")
    assert p.payload == b"PS"
    assert p.padding == 3
    assert p.serialise() == data


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (b"\x80\x60\x00", "shorter than the 12-byte header"),
        (b"\x40" + bytes(11), "version 1"),
        (b"\x82" + bytes(11) + bytes(4), "CSRCs run past"),
        (b"\x90" + bytes(11) + b"\x00\x00", "extension at byte 12 is truncated"),
        (b"\x90" + bytes(11) + b"\x00\x00\x00\x02" + bytes(4), "runs past the end"),
        (b"\xa0" + bytes(11) + b"\x00", "padding count 0"),
        (b"\xa0" + bytes(11) + b"ab\x09", "padding count 9"),
    ],
)
def test_parse_rejects(data: bytes, what: str) -> None:
    with pytest.raises(ParseError, match=what):
        RtpPacket.parse(data)


packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(max_size=64),
    marker=st.booleans(),
    csrcs=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15).map(tuple),
    extension=st.none()
    | st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=16).map(lambda b: b[: len(b) // 4 * 4])),
    padding=st.integers(0, 255),
)


@given(packets)
def test_round_trip(packet: RtpPacket) -> None:
    assert RtpPacket.parse(packet.serialise()) == packet


@given(st.binary(max_size=80))
def test_fuzz_random_bytes(data: bytes) -> None:
    try:
        packet = RtpPacket.parse(data)
    except ParseError:
        return
    assert len(packet.payload) <= len(data) - 12


@given(packets, st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=6))
def test_fuzz_mutated(packet: RtpPacket, edits: list[tuple[int, int]]) -> None:
    data = bytearray(packet.serialise())
    for where, value in edits:
        if data:
            data[where % len(data)] = value
    try:
        parsed = RtpPacket.parse(bytes(data))
    except ParseError:
        return
    # Padding goes out as zeros whatever came in; everything else byte for byte.
    assert RtpPacket.parse(parsed.serialise()) == parsed
    assert len(parsed.serialise()) == len(data)


# --- receiver ------------------------------------------------------------------------------


def test_in_order_and_wrap_around() -> None:
    rx = RtpReceiver()
    seqs = [(65530 + i) & 0xFFFF for i in range(12)]
    out = [s for p in seqs for s in received(rx.push(pkt(p)))]
    assert out == seqs
    assert rx.stats.received == 12
    assert rx.stats.lost == 0


def test_reordering_across_the_wrap() -> None:
    rx = RtpReceiver(window=8)
    order = [65534, 0, 65535, 2, 1, 3]
    out = [s for p in order for s in received(rx.push(pkt(p)))]
    assert out == [65534, 65535, 0, 1, 2, 3]
    assert rx.stats.reordered == 2
    assert rx.stats.lost == 0


def test_duplicates_are_dropped() -> None:
    rx = RtpReceiver()
    events = rx.push(pkt(10)) + rx.push(pkt(10)) + rx.push(pkt(12)) + rx.push(pkt(12))
    events += rx.push(pkt(11))
    assert received(events) == [10, 11, 12]
    assert rx.stats.duplicates == 2


def test_loss_declared_after_the_window() -> None:
    rx = RtpReceiver(window=4)
    events = rx.push(pkt(100))
    for seq in range(102, 106):  # 101 never comes
        events += rx.push(pkt(seq))
    assert received(events) == [100]
    events = rx.push(pkt(106))
    assert events[0] == Lost(1)
    assert received(events) == [102, 103, 104, 105, 106]
    assert rx.stats.lost == 1
    # It comes after all: too late, dropped and counted as such.
    assert rx.push(pkt(101)) == []
    assert rx.stats.late == 1


def test_flush_releases_everything_held() -> None:
    rx = RtpReceiver(window=32)
    rx.push(pkt(1))
    assert rx.push(pkt(3)) == []
    assert rx.push(pkt(6)) == []
    assert rx.flush() == [Lost(1), Received(pkt(3)), Lost(2), Received(pkt(6))]
    assert rx.stats.lost == 3
    assert received(rx.push(pkt(7))) == [7]


def test_expected_ssrc_mismatch_is_reported_and_accepted() -> None:
    rx = RtpReceiver(expected_ssrc=1)
    events = rx.push(pkt(5, ssrc=2))
    assert events == [SsrcChanged(1, 2), Received(pkt(5, ssrc=2))]
    assert rx.ssrc == 2


def test_new_ssrc_after_probation() -> None:
    rx = RtpReceiver(probation=2)
    for seq in range(3):
        rx.push(pkt(seq, ssrc=1))
    # A single stray packet from another sender changes nothing.
    assert rx.push(pkt(900, ssrc=2)) == []
    assert received(rx.push(pkt(3, ssrc=1))) == [3]
    # A restarted sender: two packets in sequence and the stream follows it.
    assert rx.push(pkt(40000, ssrc=3)) == []
    events = rx.push(pkt(40001, ssrc=3))
    assert events[0] == SsrcChanged(1, 3)
    assert received(events) == [40000, 40001]
    assert received(rx.push(pkt(40002, ssrc=3))) == [40002]
    assert rx.push(pkt(4, ssrc=1)) == []
    assert rx.stats.ssrc_changes == 1


def test_sequence_jump_is_a_restart_once_confirmed() -> None:
    rx = RtpReceiver()
    rx.push(pkt(10))
    assert rx.push(pkt(30000)) == []  # one far packet: ignored
    assert received(rx.push(pkt(11))) == [11]
    assert rx.push(pkt(50000)) == []
    events = rx.push(pkt(50001))
    assert Lost(0) in events
    assert received(events) == [50001]
    assert rx.stats.restarts == 1


@settings(max_examples=50)
@given(st.integers(0, 0xFFFF), st.data())
def test_local_reordering_loses_nothing(start: int, data: st.DataObject) -> None:
    seqs = [(start + i) & 0xFFFF for i in range(60)]
    shuffled = list(seqs)
    for i in range(0, 60, 4):  # swap within blocks of 4, inside a window of 8
        block = shuffled[i : i + 4]
        shuffled[i : i + 4] = data.draw(st.permutations(block))
    rx = RtpReceiver(window=8)
    first = shuffled.index(seqs[0])
    out: list[int] = []
    # The receiver starts at the first packet it sees; begin with the lowest one.
    shuffled.insert(0, shuffled.pop(first))
    for s in shuffled:
        out += received(rx.push(pkt(s)))
    out += received(rx.flush())
    assert out == seqs
    assert rx.stats.lost == 0


# --- RFC 4571 framing ----------------------------------------------------------------------


@given(
    st.lists(st.binary(min_size=1, max_size=300), max_size=12),
    st.lists(st.integers(1, 400), min_size=1, max_size=20),
)
def test_tcp_framing_any_chunking(frames: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(frame_rfc4571(f) for f in frames)
    decoder = Rfc4571Decoder()
    out: list[bytes] = []
    pos = 0
    i = 0
    while pos < len(stream):
        step = cuts[i % len(cuts)]
        out += decoder.feed(stream[pos : pos + step])
        pos += step
        i += 1
    assert out == frames
    assert decoder.pending == 0


def test_tcp_framing_split_prefix_and_many_per_read() -> None:
    a, b = b"\x80" * 5, b"\x80" * 3
    stream = frame_rfc4571(a) + frame_rfc4571(b)
    decoder = Rfc4571Decoder()
    assert decoder.feed(stream[:1]) == []
    assert decoder.feed(stream[1:3]) == []
    assert decoder.pending == 3
    assert decoder.feed(stream[3:]) == [a, b]
    assert decoder.feed(frame_rfc4571(a) * 3) == [a, a, a]


def test_tcp_frame_too_long() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        frame_rfc4571(bytes(70000))


# --- packetiser ----------------------------------------------------------------------------


@given(st.binary(max_size=5000), st.integers(13, 1500), st.integers(0, 0xFFFF))
def test_packetizer(payload: bytes, mtu: int, seq: int) -> None:
    out = RtpPacketizer(ssrc=5, mtu=mtu, sequence=seq).packetize(payload, 2**32 + 7)
    parsed = [RtpPacket.parse(p) for p in out]
    assert all(len(p) <= mtu for p in out)
    assert b"".join(p.payload for p in parsed) == payload
    assert [p.sequence for p in parsed] == [(seq + i) & 0xFFFF for i in range(len(out))]
    assert [p.marker for p in parsed] == [False] * (len(out) - 1) + [True]
    assert {p.timestamp for p in parsed} == {7}
    objects = RtpPacketizer(ssrc=5, mtu=mtu, sequence=seq).packets(payload, 2**32 + 7)
    assert [p.serialise() for p in objects] == out


def test_packetizer_mtu_too_small() -> None:
    with pytest.raises(ValueError, match="MTU"):
        RtpPacketizer(ssrc=1, mtu=12)
