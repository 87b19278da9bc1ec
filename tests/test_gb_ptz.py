from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from xueliang.gb28181 import ptz
from xueliang.gb28181.errors import ParseError
from xueliang.gb28181.ptz import (
    STOP,
    Auxiliary,
    Cruise,
    CruiseOp,
    FocusIris,
    Preset,
    PresetOp,
    PtzMove,
    RawPtz,
    Scan,
    ScanOp,
)


def test_stop_is_the_well_known_string() -> None:
    # The string every platform sends to stop: A5 0F 01 00 00 00 00, checksum B5.
    assert ptz.encode_hex(STOP) == "A50F0100000000B5"
    decoded = ptz.decode("a50f0100000000b5")
    assert decoded.address == 1
    assert isinstance(decoded.command, PtzMove)
    assert decoded.command.is_stop


def _with_checksum(head: str) -> str:
    """Bytes 1-7 as written in the standard's examples, plus their sum as byte 8."""
    raw = bytes.fromhex(head)
    return (raw + bytes([sum(raw) & 0xFF])).hex().upper()


@pytest.mark.parametrize(
    ("command", "head"),
    [
        (PtzMove(pan=1, pan_speed=0x1F), "A50F01011F0000"),
        (PtzMove(pan=-1, pan_speed=0x1F), "A50F01021F0000"),
        (PtzMove(tilt=1, tilt_speed=0x20), "A50F0108002000"),
        (PtzMove(tilt=-1, tilt_speed=0x20), "A50F0104002000"),
        (PtzMove(zoom=1, zoom_speed=1), "A50F0110000010"),
        (PtzMove(zoom=-1, zoom_speed=1), "A50F0120000010"),
        (PtzMove(pan=-1, tilt=1, pan_speed=5, tilt_speed=6), "A50F010A050600"),
        (Preset(PresetOp.CALL, 3), "A50F0182000300"),
        (Preset(PresetOp.SET, 1), "A50F0181000100"),
        (FocusIris(focus=1, focus_speed=0x10), "A50F0141100000"),
        (FocusIris(focus=-1, focus_speed=0x10), "A50F0142100000"),
        (FocusIris(iris=1, iris_speed=0x10), "A50F0144001000"),
        (FocusIris(iris=-1, iris_speed=0x10), "A50F0148001000"),
    ],
)
def test_known_commands(command: ptz.PtzCommand, head: str) -> None:
    expected = _with_checksum(head)
    assert ptz.encode_hex(command) == expected
    assert ptz.decode(expected).command == command


def test_checksum_is_sum_of_first_seven_bytes() -> None:
    raw = ptz.encode(PtzMove(pan=1, tilt=1, zoom=-1, pan_speed=200, tilt_speed=100, zoom_speed=9))
    assert raw[0] == 0xA5 and raw[1] == 0x0F
    assert raw[3] == 0x01 | 0x08 | 0x20
    assert (raw[4], raw[5], raw[6] >> 4) == (200, 100, 9)
    assert raw[7] == sum(raw[:7]) & 0xFF


def test_twelve_bit_address_splits_over_bytes_3_and_7() -> None:
    raw = ptz.encode(Preset(PresetOp.DELETE, 255), address=0xABC)
    assert raw[2] == 0xBC and raw[6] & 0x0F == 0xA
    assert ptz.decode(raw) == ptz.DecodedPtz(0xABC, Preset(PresetOp.DELETE, 255))


@pytest.mark.parametrize(
    "command",
    [
        Cruise(CruiseOp.ADD_POINT, 1, 5),
        Cruise(CruiseOp.DELETE_POINT, 1, 0),
        Cruise(CruiseOp.SET_SPEED, 2, 0x123),
        Cruise(CruiseOp.SET_DWELL, 2, 4095),
        Cruise(CruiseOp.START, 7),
        Scan(ScanOp.START, 1),
        Scan(ScanOp.SET_LEFT, 1),
        Scan(ScanOp.SET_RIGHT, 1),
        Scan(ScanOp.SET_SPEED, 1, 0xFFF),
        Auxiliary(on=True, number=1),
        Auxiliary(on=False, number=2),
        FocusIris(),
        RawPtz(0x99, 1, 2, 3),
    ],
)
def test_round_trip(command: ptz.PtzCommand) -> None:
    assert ptz.decode(ptz.encode(command, address=7)) == ptz.DecodedPtz(7, command)


@pytest.mark.parametrize(
    "command",
    [
        PtzMove(pan=2),
        PtzMove(pan_speed=256),
        PtzMove(zoom_speed=16),
        PtzMove(tilt_speed=-1),
        FocusIris(focus_speed=300),
        Preset(PresetOp.CALL, 0),
        Preset(PresetOp.CALL, 256),
        Cruise(CruiseOp.SET_SPEED, 1, 4096),
        Scan(ScanOp.SET_SPEED, 256, 1),
        Auxiliary(True, 256),
    ],
)
def test_encode_validates_ranges(command: ptz.PtzCommand) -> None:
    with pytest.raises(ValueError):
        ptz.encode(command)


def test_encode_validates_address() -> None:
    with pytest.raises(ValueError):
        ptz.encode(STOP, address=4096)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("A50F0100000000B6", "checksum"),
        ("A50F0100000000", "16 hex"),
        ("A50F0100000000ZZ", "hexadecimal"),
        ("B50F0100000000C5", "0xA5"),
        ("A50E0100000000B4", "check nibble"),
        ("A50F0103000000B8", "left and right"),
        ("A50F010C000000C1", "up and down"),
        ("A50F0130000000E5", "zoom in and out"),
        ("A50F0143000000F8", "focus near and far"),
        ("A50F014C00000001", "iris open and close"),
        ("A50F018200000037", "preset number 0"),
    ],
)
def test_decode_refuses(text: str, why: str) -> None:
    with pytest.raises(ParseError, match=why):
        ptz.decode(text)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=12) | st.text(max_size=20))
def test_decode_fuzz_only_parse_error(data: bytes | str) -> None:
    try:
        result = ptz.decode(data)
    except ParseError:
        return
    # Anything accepted encodes to a frame that decodes to the same command (bytes a command
    # does not use are ignored on the way in and sent as zero on the way out).
    assert ptz.decode(ptz.encode(result.command, result.address)) == result


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=7, max_size=7))
@example(b"\xa5\x54\x00\x00\x00\x00\x00")  # version 5 in byte 2: found by CI
def test_any_valid_checksum_frame_decodes_or_is_refused(head: bytes) -> None:
    frame = head + bytes([sum(head) & 0xFF])
    try:
        result = ptz.decode(frame)
    except ParseError:
        return
    again = ptz.encode(result.command, result.address)
    assert ptz.decode(again) == result
    # Byte 2 holds the sender's version and its check nibble: a frame of another version
    # decodes (devices differ), ours is always written as version 0. The rest must agree.
    assert again[0] == frame[0] and again[3] == frame[3]
