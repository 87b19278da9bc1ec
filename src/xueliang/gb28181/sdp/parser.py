"""Parsing SDP text (bytes or str) into the model of :mod:`xueliang.gb28181.sdp.model`.

Lenient as devices require: CRLF or LF, blanks around ``=``, unknown lines kept, missing lines
defaulted, ``y=`` with odd padding normalised; what cannot be read as SDP raises ParseError.
"""

from __future__ import annotations

import re

from xueliang.gb28181.errors import ParseError
from xueliang.gb28181.sdp.model import (
    UNSPECIFIED_ADDRESS,
    Direction,
    Media,
    MediaFormat,
    Origin,
    RtpMap,
    SessionDescription,
    Setup,
)

MAX_SDP_BYTES = 64 * 1024
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _decode(data: bytes) -> str:
    if len(data) > MAX_SDP_BYTES:
        raise ParseError(f"SDP body of {len(data)} bytes is over the {MAX_SDP_BYTES} limit")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # s= and i= sometimes carry GBK text; GB18030 decodes any GBK byte string.
        return data.decode("gb18030", errors="replace")


def _int(value: str, what: str, line_no: int) -> int:
    text = value.strip()
    if not _is_digits(text):
        raise ParseError(f"SDP line {line_no}: {what} is not a number: {value[:40]!r}")
    return int(text)


def _connection_address(value: str, line_no: int) -> str:
    parts = value.split()
    if len(parts) < 3:
        raise ParseError(f"SDP line {line_no}: c= needs 'IN IP4 address': {value[:80]!r}")
    # Multicast addresses may carry /ttl; the address is what matters here.
    address = parts[2].split("/", 1)[0]
    if not address:
        raise ParseError(f"SDP line {line_no}: c= has no address: {value[:80]!r}")
    return address


def _origin(value: str) -> Origin:
    parts = value.split()
    # Devices shorten o= (some drop the session id); keep what is there, the dialog identifies.
    if len(parts) >= 6:
        return Origin(parts[0], parts[1], parts[2], parts[5], parts[4])
    return Origin(
        parts[0] if parts else "", address=parts[-1] if len(parts) > 1 else UNSPECIFIED_ADDRESS
    )


def _ssrc(value: str) -> str | None:
    text = value.strip()
    digits = text.lstrip("0")
    if not text.isascii() or not text.isdigit():
        return None
    # Stated as 10 digits; devices that drop or add zeros still mean the same number.
    if len(text) == 10:
        return text
    if len(digits) <= 10:
        return digits.rjust(10, "0")
    return None


class _MediaBuilder:
    """Collects one m= section's lines; the frozen Media is made at the end."""

    def __init__(self, kind: str, port: int, transport: str, formats: tuple[int, ...]) -> None:
        self.kind, self.port, self.transport, self.formats = kind, port, transport, formats
        self.rtpmaps: list[RtpMap] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.direction: Direction | None = None
        self.setup: Setup | None = None
        self.connection: str | None = None
        self.numbers: dict[str, int] = {}
        self.address: str | None = None

    def attribute(self, name: str, value: str | None, line_no: int) -> None:
        key = name.strip().lower()
        lowered = value.strip().lower() if value is not None else None
        if key == "rtpmap" and value is not None:
            self.rtpmaps.append(_rtpmap(value, line_no))
        elif value is None and key in _DIRECTIONS:
            self.direction = Direction(key)
        elif key == "setup" and lowered in _SETUPS:
            self.setup = Setup(lowered)
        elif key == "connection" and value is not None:
            self.connection = value.strip()
        elif key in _NUMBER_ATTRIBUTES and value is not None and _is_digits(value.strip()):
            self.numbers[key] = int(value.strip())
        else:
            self.attributes.append((name.strip(), value))

    def build(self) -> Media:
        return Media(
            kind=self.kind,
            port=self.port,
            transport=self.transport,
            formats=self.formats,
            rtpmaps=tuple(self.rtpmaps),
            direction=self.direction,
            setup=self.setup,
            connection=self.connection,
            download_speed=self.numbers.get("downloadspeed"),
            file_size=self.numbers.get("filesize"),
            stream_number=self.numbers.get("streamnumber"),
            address=self.address,
            attributes=tuple(self.attributes),
        )


_DIRECTIONS = frozenset(d.value for d in Direction)
_SETUPS = frozenset(s.value for s in Setup)
_NUMBER_ATTRIBUTES = frozenset({"downloadspeed", "filesize", "streamnumber"})


def _is_digits(text: str) -> bool:
    """ASCII digits, at most 18 of them: no SDP number needs more, and int() refuses (with a
    ValueError) digit strings over 4300 long."""
    return len(text) <= 18 and text.isascii() and text.isdigit()


def _rtpmap(value: str, line_no: int) -> RtpMap:
    match = re.fullmatch(r"\s*(\d{1,3})\s+([^/\s]+)\s*/\s*(\d{1,9})\s*(?:/\s*(\d{1,3}))?\s*", value)
    if match is None:
        raise ParseError(f"SDP line {line_no}: a=rtpmap is not 'PT NAME/RATE': {value[:80]!r}")
    channels = int(match[4]) if match[4] else None
    return RtpMap(int(match[1]), match[2], int(match[3]), channels)


def _media(value: str, line_no: int) -> _MediaBuilder:
    parts = value.split()
    if len(parts) < 3:
        raise ParseError(f"SDP line {line_no}: m= needs 'media port transport fmt': {value[:80]!r}")
    port_text = parts[1].split("/", 1)[0]  # "port/count" is allowed by RFC 4566
    port = _int(port_text, "m= port", line_no)
    if port > 65535:
        raise ParseError(f"SDP line {line_no}: m= port {port} is out of range")
    formats = tuple(int(fmt) for fmt in parts[3:] if _is_digits(fmt) and int(fmt) <= 127)
    return _MediaBuilder(parts[0].lower(), port, parts[2], formats)


def parse(data: bytes | str) -> SessionDescription:
    """Parse an SDP body; raises ParseError for what cannot be read as SDP at all."""
    text = data if isinstance(data, str) else _decode(data)
    if len(text) > MAX_SDP_BYTES:
        raise ParseError(f"SDP body of {len(text)} characters is over the {MAX_SDP_BYTES} limit")
    # NULs (C strings sent with their terminator) and other control characters: blanks.
    text = _CONTROL.sub(" ", text.lstrip("\ufeff"))
    origin: Origin | None = None
    session_name = ""
    address: str | None = None
    uri: str | None = None
    start = stop = version = 0
    ssrc: str | None = None
    media_format: MediaFormat | None = None
    other: list[tuple[str, str]] = []
    media: list[_MediaBuilder] = []
    seen_any = False
    for line_no, raw_line in enumerate(re.split(r"\r\n|\r|\n", text), start=1):
        letter, equals, value = raw_line.strip().partition("=")
        letter = letter.strip().lower()
        if not equals or len(letter) != 1 or not ("a" <= letter <= "z"):
            # A stray line (a device's comment, a truncated tail): ignore it as SIP stacks do.
            continue
        seen_any = True
        value = value.strip()
        current = media[-1] if media else None
        if letter == "m":
            media.append(_media(value, line_no))
        elif letter == "a":
            name, colon, attribute_value = value.partition(":")
            if current is not None:
                current.attribute(name, attribute_value if colon else None, line_no)
            else:
                other.append(("a", value))  # session-level a= lines are rare in GB; keep them
        elif letter == "c":
            if current is not None:
                current.address = _connection_address(value, line_no)
            else:
                address = _connection_address(value, line_no)
        elif letter == "v":
            version = _int(value, "v=", line_no) if value else 0
        elif letter == "o":
            origin = _origin(value)
        elif letter == "s":
            session_name = value
        elif letter == "u":
            uri = value
        elif letter == "t":
            times = value.split()
            start = _int(times[0], "t= start", line_no) if times else 0
            stop = _int(times[1], "t= stop", line_no) if len(times) > 1 else 0
        elif letter == "y" and _ssrc(value) is not None:
            ssrc = _ssrc(value)
        elif letter == "f" and _media_format(value) is not None:
            media_format = _media_format(value)
        else:
            other.append((letter, value))  # including a y= or f= that could not be read
    if not seen_any:
        raise ParseError("SDP body has no 'x=value' lines")
    return SessionDescription(
        origin=origin,
        session_name=session_name,
        address=address,
        media=tuple(builder.build() for builder in media),
        uri=uri,
        start=start,
        stop=stop,
        ssrc=ssrc,
        media_format=media_format,
        version=version,
        other_lines=tuple(other),
    )


def _media_format(value: str) -> MediaFormat | None:
    try:
        return MediaFormat.parse(value)
    except ParseError:
        return None
