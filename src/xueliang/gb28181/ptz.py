"""The 8-byte PTZCmd of GB/T 28181 (Appendix A.3), carried in DeviceControl as 16 hex digits.

Layout, bytes numbered 1..8 as the standard does:

1. ``A5`` leading byte
2. high nibble: version (0); low nibble: check = (0xA + 0x5 + version) % 16, so ``0F`` for version 0
3. address, low 8 bits
4. command: ``00xxxxxx`` pan/tilt/zoom bits, ``0100xxxx`` focus/iris bits, ``0x81``.. presets,
   cruise, scan, auxiliary switches
5. data 1 (pan speed, focus speed, cruise/scan group, ...)
6. data 2 (tilt speed, iris speed, preset number, ...)
7. high nibble: data 3 (zoom speed, or the high bits of a 12-bit value); low nibble: address,
   high 4 bits
8. checksum: sum of bytes 1..7, modulo 256

Encoding validates every range and raises ValueError; decoding raises ParseError (also a
ValueError) for anything that is not a well-formed command, including a wrong checksum.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from xueliang.gb28181.errors import ParseError

LEAD = 0xA5
VERSION = 0
ADDRESS_MAX = 0xFFF
SPEED_MAX = 0xFF
ZOOM_SPEED_MAX = 0x0F
LONG_VALUE_MAX = 0xFFF  # cruise speed, dwell time, scan speed: 12 bits over bytes 6 and 7

# Byte 4 bits for pan/tilt/zoom commands.
_RIGHT, _LEFT, _DOWN, _UP, _ZOOM_IN, _ZOOM_OUT = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
# Byte 4 bits for focus/iris commands (high nibble 0100).
_FI_BASE = 0x40
_FOCUS_FAR, _FOCUS_NEAR, _IRIS_OPEN, _IRIS_CLOSE = 0x01, 0x02, 0x04, 0x08


class PresetOp(IntEnum):
    SET = 0x81
    CALL = 0x82
    DELETE = 0x83


class CruiseOp(IntEnum):
    ADD_POINT = 0x84  # group, preset
    DELETE_POINT = 0x85  # group, preset (0: the whole cruise)
    SET_SPEED = 0x86  # group, 12-bit speed
    SET_DWELL = 0x87  # group, 12-bit dwell time in seconds
    START = 0x88  # group
    # Stopping a cruise is the plain stop command (all zero).


class ScanOp(IntEnum):
    """0x89 with byte 6 choosing start / left edge / right edge, 0x8A sets the speed."""

    START = 0
    SET_LEFT = 1
    SET_RIGHT = 2
    SET_SPEED = 3  # encoded as command 0x8A


_SCAN = 0x89
_SCAN_SPEED = 0x8A
_AUX_ON = 0x8C
_AUX_OFF = 0x8D


@dataclass(frozen=True)
class PtzMove:
    """Pan/tilt/zoom. pan: -1 left, 1 right; tilt: -1 down, 1 up; zoom: -1 out, 1 in; 0 none.

    All zero is the stop command; speeds of the axes that do not move are sent as given.
    """

    pan: int = 0
    tilt: int = 0
    zoom: int = 0
    pan_speed: int = 0
    tilt_speed: int = 0
    zoom_speed: int = 0

    @property
    def is_stop(self) -> bool:
        return self.pan == 0 and self.tilt == 0 and self.zoom == 0


STOP = PtzMove()


@dataclass(frozen=True)
class FocusIris:
    """Focus: -1 near, 1 far; iris: -1 close, 1 open; 0 none. An all-zero FI command stops."""

    focus: int = 0
    iris: int = 0
    focus_speed: int = 0
    iris_speed: int = 0


@dataclass(frozen=True)
class Preset:
    op: PresetOp
    number: int  # 1..255


@dataclass(frozen=True)
class Cruise:
    op: CruiseOp
    group: int  # 0..255
    value: int = 0  # preset number, speed or dwell time, depending on op


@dataclass(frozen=True)
class Scan:
    op: ScanOp
    group: int  # 0..255
    speed: int = 0  # only for SET_SPEED, 12 bits


@dataclass(frozen=True)
class Auxiliary:
    """Auxiliary switch (wiper, light, ...) number on or off."""

    on: bool
    number: int  # 0..255


@dataclass(frozen=True)
class RawPtz:
    """A command byte this module does not know; kept whole so it can be passed on."""

    command: int
    data1: int
    data2: int
    data3: int


PtzCommand = PtzMove | FocusIris | Preset | Cruise | Scan | Auxiliary | RawPtz


@dataclass(frozen=True)
class DecodedPtz:
    address: int
    command: PtzCommand


def _check(name: str, value: int, top: int, low: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= top:
        raise ValueError(f"PTZ {name} must be an integer in {low}..{top}, got {value!r}")
    return value


def _direction(name: str, value: int) -> int:
    if value not in (-1, 0, 1):
        raise ValueError(f"PTZ {name} must be -1, 0 or 1, got {value!r}")
    return value


def _fields(command: PtzCommand) -> tuple[int, int, int, int]:
    """Byte 4, byte 5, byte 6 and the data nibble of byte 7 for a command."""
    match command:
        case PtzMove():
            pan = _direction("pan", command.pan)
            tilt = _direction("tilt", command.tilt)
            zoom = _direction("zoom", command.zoom)
            code = (
                (_RIGHT if pan == 1 else _LEFT if pan == -1 else 0)
                | (_UP if tilt == 1 else _DOWN if tilt == -1 else 0)
                | (_ZOOM_IN if zoom == 1 else _ZOOM_OUT if zoom == -1 else 0)
            )
            return (
                code,
                _check("pan speed", command.pan_speed, SPEED_MAX),
                _check("tilt speed", command.tilt_speed, SPEED_MAX),
                _check("zoom speed", command.zoom_speed, ZOOM_SPEED_MAX),
            )
        case FocusIris():
            focus = _direction("focus", command.focus)
            iris = _direction("iris", command.iris)
            code = (
                _FI_BASE
                | (_FOCUS_FAR if focus == 1 else _FOCUS_NEAR if focus == -1 else 0)
                | (_IRIS_OPEN if iris == 1 else _IRIS_CLOSE if iris == -1 else 0)
            )
            return (
                code,
                _check("focus speed", command.focus_speed, SPEED_MAX),
                _check("iris speed", command.iris_speed, SPEED_MAX),
                0,
            )
        case Preset():
            return (PresetOp(command.op), 0, _check("preset number", command.number, 255, 1), 0)
        case Cruise():
            op = CruiseOp(command.op)
            group = _check("cruise group", command.group, 255)
            if op in (CruiseOp.SET_SPEED, CruiseOp.SET_DWELL):
                value = _check("cruise value", command.value, LONG_VALUE_MAX)
                return (op, group, value & 0xFF, value >> 8)
            if op is CruiseOp.START:
                return (op, group, 0, 0)
            return (op, group, _check("cruise preset", command.value, 255), 0)
        case Scan():
            scan_op = ScanOp(command.op)
            group = _check("scan group", command.group, 255)
            if scan_op is ScanOp.SET_SPEED:
                speed = _check("scan speed", command.speed, LONG_VALUE_MAX)
                return (_SCAN_SPEED, group, speed & 0xFF, speed >> 8)
            return (_SCAN, group, int(scan_op), 0)
        case Auxiliary():
            return (
                _AUX_ON if command.on else _AUX_OFF,
                _check("auxiliary number", command.number, 255),
                0,
                0,
            )
        case RawPtz():
            return (
                _check("command", command.command, 0xFF),
                _check("data1", command.data1, 0xFF),
                _check("data2", command.data2, 0xFF),
                _check("data3", command.data3, 0x0F),
            )
    raise TypeError(f"not a PTZ command: {command!r}")


def encode(command: PtzCommand, address: int = 1) -> bytes:
    """The 8 bytes for a command sent to the PTZ unit at ``address`` (0..4095, usually 1)."""
    _check("address", address, ADDRESS_MAX)
    code, data1, data2, data3 = _fields(command)
    check_nibble = (LEAD >> 4) + (LEAD & 0x0F) + VERSION
    head = [
        LEAD,
        (VERSION << 4) | (check_nibble & 0x0F),
        address & 0xFF,
        code,
        data1,
        data2,
        (data3 << 4) | (address >> 8),
    ]
    return bytes([*head, sum(head) & 0xFF])


def encode_hex(command: PtzCommand, address: int = 1) -> str:
    """The upper-case hex form carried in ``<PTZCmd>``."""
    return encode(command, address).hex().upper()


def _decode_move(code: int, data1: int, data2: int, data3: int) -> PtzMove:
    if code & _LEFT and code & _RIGHT:
        raise ParseError(f"PTZCmd byte 4 {code:#04x} asks for left and right at once")
    if code & _UP and code & _DOWN:
        raise ParseError(f"PTZCmd byte 4 {code:#04x} asks for up and down at once")
    if code & _ZOOM_IN and code & _ZOOM_OUT:
        raise ParseError(f"PTZCmd byte 4 {code:#04x} asks for zoom in and out at once")
    return PtzMove(
        pan=1 if code & _RIGHT else -1 if code & _LEFT else 0,
        tilt=1 if code & _UP else -1 if code & _DOWN else 0,
        zoom=1 if code & _ZOOM_IN else -1 if code & _ZOOM_OUT else 0,
        pan_speed=data1,
        tilt_speed=data2,
        zoom_speed=data3,
    )


def _decode_fi(code: int, data1: int, data2: int) -> FocusIris:
    if code & _FOCUS_FAR and code & _FOCUS_NEAR:
        raise ParseError(f"PTZCmd byte 4 {code:#04x} asks for focus near and far at once")
    if code & _IRIS_OPEN and code & _IRIS_CLOSE:
        raise ParseError(f"PTZCmd byte 4 {code:#04x} asks for iris open and close at once")
    return FocusIris(
        focus=1 if code & _FOCUS_FAR else -1 if code & _FOCUS_NEAR else 0,
        iris=1 if code & _IRIS_OPEN else -1 if code & _IRIS_CLOSE else 0,
        focus_speed=data1,
        iris_speed=data2,
    )


def _decode_command(code: int, data1: int, data2: int, data3: int) -> PtzCommand:
    if code & 0xC0 == 0:
        return _decode_move(code, data1, data2, data3)
    if code & 0xF0 == _FI_BASE:
        return _decode_fi(code, data1, data2)
    if code in (PresetOp.SET, PresetOp.CALL, PresetOp.DELETE):
        if data2 == 0:
            raise ParseError("PTZCmd preset number 0 (byte 6) is not a preset")
        return Preset(PresetOp(code), data2)
    if code in (CruiseOp.SET_SPEED, CruiseOp.SET_DWELL):
        return Cruise(CruiseOp(code), data1, data2 | (data3 << 8))
    if code == CruiseOp.START:
        return Cruise(CruiseOp.START, data1)
    if code in (CruiseOp.ADD_POINT, CruiseOp.DELETE_POINT):
        return Cruise(CruiseOp(code), data1, data2)
    if code == _SCAN and data2 <= ScanOp.SET_RIGHT:
        return Scan(ScanOp(data2), data1)
    if code == _SCAN_SPEED:
        return Scan(ScanOp.SET_SPEED, data1, data2 | (data3 << 8))
    if code in (_AUX_ON, _AUX_OFF):
        return Auxiliary(on=code == _AUX_ON, number=data1)
    return RawPtz(code, data1, data2, data3)


def decode(data: bytes | str) -> DecodedPtz:
    """Read a PTZCmd from its 8 bytes or its 16 hex digits (any case, spaces around allowed)."""
    if isinstance(data, str):
        text = data.strip()
        if len(text) != 16:
            raise ParseError(f"PTZCmd must be 16 hex digits, got {len(text)} characters")
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise ParseError(f"PTZCmd is not hexadecimal: {text[:32]!r}") from None
    else:
        raw = bytes(data)
    if len(raw) != 8:
        raise ParseError(f"PTZCmd must be 8 bytes, got {len(raw)}")
    if raw[0] != LEAD:
        raise ParseError(f"PTZCmd byte 1 must be 0xA5, got {raw[0]:#04x}")
    version = raw[1] >> 4
    if raw[1] & 0x0F != ((LEAD >> 4) + (LEAD & 0x0F) + version) & 0x0F:
        raise ParseError(f"PTZCmd byte 2 {raw[1]:#04x}: check nibble does not match the version")
    if sum(raw[:7]) & 0xFF != raw[7]:
        raise ParseError(
            f"PTZCmd checksum: byte 8 is {raw[7]:#04x}, bytes 1-7 sum to {sum(raw[:7]) & 0xFF:#04x}"
        )
    address = raw[2] | ((raw[6] & 0x0F) << 8)
    return DecodedPtz(address, _decode_command(raw[3], raw[4], raw[5], raw[6] >> 4))
