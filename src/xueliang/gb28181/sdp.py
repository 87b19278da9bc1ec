"""SDP (RFC 4566) as GB/T 28181 uses it in INVITE offers and answers.

The GB profile adds lines RFC 4566 does not know: ``y=`` (the 10-digit SSRC, first digit 0 for
live, 1 for history) and ``f=`` (the media description ``v/codec/resolution/frame rate/rate
type/bit rate`` then ``a/codec/bit rate/sample rate``), and gives meaning to ``s=`` (Play,
Playback, Download, Talk), ``u=`` (``channel:parameter``) and ``t=`` (the playback range).

Parsing is lenient because devices are: CRLF or LF, blanks around ``=`` and between fields, lines
the profile does not know, missing ``v=``/``o=``/``t=``, ``y=`` with odd padding. What cannot be
made sense of raises ParseError; an SSRC that does not match the offer is reported by
:func:`answer_target`, never raised.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from xueliang.gb28181.errors import ParseError

MAX_SDP_BYTES = 64 * 1024
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# t= values at or above this are NTP seconds (epoch 1900); Unix seconds reach it only in 2040.
NTP_UNIX_OFFSET = 2_208_988_800
# An o= line without an address: a placeholder in the text, nothing binds to it.
UNSPECIFIED_ADDRESS = "0.0.0.0"  # noqa: S104


class SessionType(StrEnum):
    PLAY = "Play"
    PLAYBACK = "Playback"
    DOWNLOAD = "Download"
    TALK = "Talk"


class Transport(StrEnum):
    UDP = "RTP/AVP"
    TCP = "TCP/RTP/AVP"


class Setup(StrEnum):
    ACTIVE = "active"  # this side connects
    PASSIVE = "passive"  # this side listens
    ACTPASS = "actpass"


class Direction(StrEnum):
    RECVONLY = "recvonly"
    SENDONLY = "sendonly"
    SENDRECV = "sendrecv"
    INACTIVE = "inactive"


@dataclass(frozen=True)
class RtpMap:
    payload_type: int
    encoding: str  # PS, H264, H265, MPEG4, PCMA, ...
    clock_rate: int
    channels: int | None = None

    def line_value(self) -> str:
        tail = f"/{self.channels}" if self.channels is not None else ""
        return f"{self.payload_type} {self.encoding}/{self.clock_rate}{tail}"


# The formats a GB platform offers for video, in the customary order of the m= line.
PS = RtpMap(96, "PS", 90000)
MPEG4 = RtpMap(97, "MPEG4", 90000)
H264 = RtpMap(98, "H264", 90000)
H265 = RtpMap(99, "H265", 90000)
DEFAULT_VIDEO_FORMATS = (PS, MPEG4, H264)


@dataclass(frozen=True)
class Media:
    """One m= section with the attributes GB uses; other a= lines are kept in ``attributes``."""

    kind: str  # video, audio
    port: int
    transport: str  # "RTP/AVP", "TCP/RTP/AVP" or whatever the device wrote
    formats: tuple[int, ...]
    rtpmaps: tuple[RtpMap, ...] = ()
    direction: Direction | None = None
    setup: Setup | None = None
    connection: str | None = None  # a=connection:new|existing (RFC 4145)
    download_speed: int | None = None
    file_size: int | None = None
    stream_number: int | None = None  # 2022: 0 main stream, 1 sub stream, ...
    address: str | None = None  # a media-level c= line
    attributes: tuple[tuple[str, str | None], ...] = ()

    @property
    def is_tcp(self) -> bool:
        return "TCP" in self.transport.upper()

    @property
    def refused(self) -> bool:
        """Port 0 in an answer: the device declines this stream (RFC 3264 section 6)."""
        return self.port == 0

    def rtpmap(self, payload_type: int) -> RtpMap | None:
        return next((m for m in self.rtpmaps if m.payload_type == payload_type), None)


F_VIDEO_CODECS = {"1": "MPEG-4", "2": "H.264", "3": "SVAC", "4": "3GP", "5": "H.265"}
F_AUDIO_CODECS = {"1": "G.711", "2": "G.723.1", "3": "G.729", "4": "G.722.1", "5": "AAC"}
# 2016 codes; the 2022 edition also allows the resolution written as WIDTHxHEIGHT.
F_RESOLUTIONS = {"1": "QCIF", "2": "CIF", "3": "4CIF", "4": "D1", "5": "720P", "6": "1080P/I"}


@dataclass(frozen=True)
class MediaFormat:
    """The ``f=`` line: fields are kept as sent (any may be empty), with readable names."""

    video_codec: str = ""
    resolution: str = ""
    frame_rate: str = ""
    rate_type: str = ""  # 1 constant, 2 variable
    video_bitrate: str = ""  # kbit/s
    audio_codec: str = ""
    audio_bitrate: str = ""
    sample_rate: str = ""

    @property
    def video_codec_name(self) -> str | None:
        return F_VIDEO_CODECS.get(self.video_codec)

    @property
    def audio_codec_name(self) -> str | None:
        return F_AUDIO_CODECS.get(self.audio_codec)

    @property
    def resolution_name(self) -> str | None:
        return F_RESOLUTIONS.get(self.resolution) or (
            self.resolution if re.fullmatch(r"\d+[xX*]\d+", self.resolution) else None
        )

    def line_value(self) -> str:
        video = "/".join(
            [
                "v",
                self.video_codec,
                self.resolution,
                self.frame_rate,
                self.rate_type,
                self.video_bitrate,
            ]
        )
        audio = "/".join(["a", self.audio_codec, self.audio_bitrate, self.sample_rate])
        return video + audio

    @classmethod
    def parse(cls, value: str) -> MediaFormat:
        text = value.strip()
        video: list[str] = []
        audio: list[str] = []
        # "v/2/4/25/1/2048a/1/8/1": the audio part starts at "a/" right after a video field.
        match = re.fullmatch(r"(?:v/(?P<v>[^a]*?))?(?:a/(?P<a>.*))?", text, re.IGNORECASE)
        if match is None:
            raise ParseError(f"SDP f= line is not v/.../a/...: {text[:80]!r}")
        if match["v"] is not None:
            video = [part.strip() for part in match["v"].split("/")]
        if match["a"] is not None:
            audio = [part.strip() for part in match["a"].split("/")]
        video += [""] * (5 - len(video))
        audio += [""] * (3 - len(audio))
        return cls(*video[:5], *audio[:3])


@dataclass(frozen=True)
class Origin:
    username: str
    session_id: str = "0"
    version: str = "0"
    address: str = UNSPECIFIED_ADDRESS
    address_type: str = "IP4"

    def line_value(self) -> str:
        ids = f"{self.username} {self.session_id} {self.version}"
        return f"{ids} IN {self.address_type} {self.address}"


@dataclass(frozen=True)
class SessionDescription:
    origin: Origin | None
    session_name: str  # Play, Playback, Download, Talk (as sent)
    address: str | None  # session-level c= address
    media: tuple[Media, ...]
    uri: str | None = None  # u=channel:parameter
    start: int = 0  # t= as sent (Unix or NTP seconds, 0 for live)
    stop: int = 0
    ssrc: str | None = None  # y= as sent, digits only
    media_format: MediaFormat | None = None
    version: int = 0
    # Lines this module does not interpret, as (type letter, value), in order.
    other_lines: tuple[tuple[str, str], ...] = ()

    @property
    def session_type(self) -> SessionType | None:
        lowered = self.session_name.strip().lower()
        return next((t for t in SessionType if t.value.lower() == lowered), None)

    @property
    def ssrc_value(self) -> int | None:
        return int(self.ssrc) if self.ssrc else None

    @property
    def is_history(self) -> bool:
        """y= starting with 1 marks history (playback, download); 0 live."""
        return self.ssrc is not None and len(self.ssrc) == 10 and self.ssrc[0] == "1"

    @property
    def channel_id(self) -> str | None:
        """The channel of u=channel:parameter (playback and download)."""
        if not self.uri:
            return None
        return self.uri.split(":", 1)[0].strip() or None

    @property
    def range_unix(self) -> tuple[int, int]:
        """t= converted to Unix seconds: devices send either NTP or Unix seconds."""
        return (_to_unix(self.start), _to_unix(self.stop))

    def video(self) -> Media | None:
        return next((m for m in self.media if m.kind == "video"), None)

    def first_media(self) -> Media | None:
        return self.media[0] if self.media else None

    def to_bytes(self) -> bytes:
        """Serialise with CRLF, in the order GB examples use (y= and f= last)."""
        lines = [f"v={self.version}"]
        if self.origin is not None:
            lines.append(f"o={self.origin.line_value()}")
        lines.append(f"s={self.session_name}")
        if self.uri is not None:
            lines.append(f"u={self.uri}")
        if self.address is not None:
            lines.append(f"c=IN {_address_type(self.address)} {self.address}")
        lines.append(f"t={self.start} {self.stop}")
        lines.extend(f"{letter}={value}" for letter, value in self.other_lines)
        for media in self.media:
            lines.extend(_media_lines(media))
        if self.ssrc is not None:
            lines.append(f"y={self.ssrc}")
        if self.media_format is not None:
            lines.append(f"f={self.media_format.line_value()}")
        return ("\r\n".join(lines) + "\r\n").encode()


def _to_unix(value: int) -> int:
    return value - NTP_UNIX_OFFSET if value >= NTP_UNIX_OFFSET else value


def _address_type(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


def _media_lines(media: Media) -> list[str]:
    formats = " ".join(str(pt) for pt in media.formats)
    lines = [f"m={media.kind} {media.port} {media.transport} {formats}".rstrip()]
    if media.address is not None:
        lines.append(f"c=IN {_address_type(media.address)} {media.address}")
    lines.extend(f"a=rtpmap:{rtpmap.line_value()}" for rtpmap in media.rtpmaps)
    if media.direction is not None:
        lines.append(f"a={media.direction.value}")
    if media.setup is not None:
        lines.append(f"a=setup:{media.setup.value}")
    if media.connection is not None:
        lines.append(f"a=connection:{media.connection}")
    if media.stream_number is not None:
        lines.append(f"a=streamnumber:{media.stream_number}")
    if media.download_speed is not None:
        lines.append(f"a=downloadspeed:{media.download_speed}")
    if media.file_size is not None:
        lines.append(f"a=filesize:{media.file_size}")
    for name, value in media.attributes:
        lines.append(f"a={name}" if value is None else f"a={name}:{value}")
    return lines


# ---------------------------------------------------------------------------------------------
# Parsing


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


# ---------------------------------------------------------------------------------------------
# Offers and answers


def make_ssrc(history: bool, realm: str, sequence: int) -> str:
    """A y= value: 0 live / 1 history, the 5 realm digits (digits 4-8 of the platform's ID),
    then a 4-digit sequence."""
    if not (len(realm) == 5 and realm.isascii() and realm.isdigit()):
        raise ValueError(f"SSRC realm must be 5 digits, got {realm!r}")
    if not 0 <= sequence <= 9999:
        raise ValueError(f"SSRC sequence must be 0..9999, got {sequence}")
    return f"{1 if history else 0}{realm}{sequence:04d}"


@dataclass(frozen=True)
class Offer:
    """What the platform puts in an INVITE to a device (or an upper platform to this one)."""

    session_type: SessionType
    platform_id: str  # o= username: the platform's 20-digit ID
    address: str  # where the platform receives (UDP, TCP passive) or connects from
    port: int
    ssrc: str
    channel_id: str | None = None  # u= for Playback and Download
    transport: Transport = Transport.UDP
    setup: Setup | None = None  # TCP only: PASSIVE = platform listens, device connects
    start: int = 0  # Unix seconds for Playback/Download
    stop: int = 0
    formats: tuple[RtpMap, ...] = DEFAULT_VIDEO_FORMATS
    stream_number: int | None = None
    download_speed: int | None = None
    media_format: MediaFormat | None = None
    extra_attributes: tuple[tuple[str, str | None], ...] = ()

    def to_session(self) -> SessionDescription:
        if self.transport is Transport.TCP and self.setup is None:
            raise ValueError("a TCP offer needs setup (active or passive)")
        is_talk = self.session_type is SessionType.TALK
        media = Media(
            kind="audio" if is_talk else "video",
            port=self.port,
            transport=self.transport.value,
            formats=tuple(f.payload_type for f in self.formats),
            rtpmaps=self.formats,
            direction=Direction.SENDRECV if is_talk else Direction.RECVONLY,
            setup=self.setup if self.transport is Transport.TCP else None,
            connection="new" if self.transport is Transport.TCP else None,
            stream_number=self.stream_number,
            download_speed=self.download_speed,
            attributes=self.extra_attributes,
        )
        uri = None
        if self.session_type in (SessionType.PLAYBACK, SessionType.DOWNLOAD):
            uri = f"{self.channel_id or ''}:0"
        return SessionDescription(
            origin=Origin(self.platform_id, address=self.address),
            session_name=self.session_type.value,
            address=self.address,
            media=(media,),
            uri=uri,
            start=self.start,
            stop=self.stop,
            ssrc=self.ssrc,
            media_format=self.media_format,
        )

    def to_bytes(self) -> bytes:
        return self.to_session().to_bytes()


@dataclass(frozen=True)
class Answer:
    """What a device returns in its 200 OK (also built by the simulator and the cascade side)."""

    device_id: str  # o= username
    address: str  # where the device sends from / listens
    port: int  # 0 refuses the stream
    ssrc: str | None
    session_type: SessionType = SessionType.PLAY
    transport: Transport = Transport.UDP
    setup: Setup | None = None
    formats: tuple[RtpMap, ...] = (PS,)
    file_size: int | None = None
    media_format: MediaFormat | None = None

    def to_bytes(self) -> bytes:
        is_talk = self.session_type is SessionType.TALK
        media = Media(
            kind="audio" if is_talk else "video",
            port=self.port,
            transport=self.transport.value,
            formats=tuple(f.payload_type for f in self.formats),
            rtpmaps=self.formats,
            direction=Direction.SENDRECV if is_talk else Direction.SENDONLY,
            setup=self.setup if self.transport is Transport.TCP else None,
            connection="new" if self.transport is Transport.TCP else None,
            file_size=self.file_size,
        )
        return SessionDescription(
            origin=Origin(self.device_id, address=self.address),
            session_name=self.session_type.value,
            address=self.address,
            media=(media,),
            ssrc=self.ssrc,
            media_format=self.media_format,
        ).to_bytes()


def answer_for(offer: SessionDescription, *, device_id: str, address: str, port: int) -> Answer:
    """The answer a device gives to ``offer``: same session type, SSRC and transport, the
    opposite TCP role, PS as the format (what GB devices send)."""
    media = offer.first_media()
    if media is None:
        raise ValueError("the offer has no m= line to answer")
    setup: Setup | None = None
    if media.is_tcp:
        setup = Setup.ACTIVE if media.setup in (Setup.PASSIVE, None) else Setup.PASSIVE
    chosen = next((m for m in media.rtpmaps if m.encoding.upper() == "PS"), PS)
    return Answer(
        device_id=device_id,
        address=address,
        port=port,
        ssrc=offer.ssrc,
        session_type=offer.session_type or SessionType.PLAY,
        transport=Transport.TCP if media.is_tcp else Transport.UDP,
        setup=setup,
        formats=(chosen,),
    )


@dataclass(frozen=True)
class MediaTarget:
    """What the platform must do after the answer: where the stream comes from and how."""

    address: str | None
    port: int
    transport: Transport
    setup: Setup | None  # the device's role: ACTIVE = device connects to the platform
    ssrc: int | None  # the SSRC to expect: the answer's y=, else the offer's
    encoding: str | None  # PS, H264, H265, ... from the answer's rtpmap
    payload_type: int | None
    refused: bool
    warnings: tuple[str, ...] = ()

    @property
    def platform_connects(self) -> bool:
        """True when the platform must open the TCP connection (the device listens)."""
        return self.transport is Transport.TCP and self.setup is Setup.PASSIVE


def answer_target(offer: SessionDescription, answer: SessionDescription) -> MediaTarget:
    """Read a device's answer against the platform's offer.

    Port 0 or a missing m= line is a refusal, not an error. Differences devices are known for
    (another SSRC, a missing setup) become warnings the caller logs.
    """
    warnings: list[str] = []
    media = answer.video() or answer.first_media()
    offered = offer.video() or offer.first_media()
    if media is None:
        return MediaTarget(
            answer.address,
            0,
            Transport.UDP,
            None,
            None,
            None,
            None,
            True,
            ("answer has no m= line",),
        )
    address = media.address or answer.address
    if address is None:
        warnings.append("answer has no c= line")
    transport = Transport.TCP if media.is_tcp else Transport.UDP
    if offered is not None and offered.is_tcp != media.is_tcp:
        warnings.append(f"offered {offered.transport}, device answered {media.transport}")
    setup = media.setup
    if transport is Transport.TCP and setup is None:
        # No a=setup: the device takes the role opposite to the one the platform offered.
        if offered is not None and offered.setup is Setup.ACTIVE:
            setup = Setup.PASSIVE
        else:
            setup = Setup.ACTIVE
        warnings.append(f"TCP answer without a=setup; assuming the device is {setup.value}")
    ssrc = answer.ssrc_value
    if answer.ssrc is None:
        ssrc = offer.ssrc_value
        if ssrc is not None:
            warnings.append("answer has no usable y= line; expecting the offered SSRC")
    elif offer.ssrc is not None and answer.ssrc != offer.ssrc:
        warnings.append(f"answer SSRC {answer.ssrc} differs from the offered {offer.ssrc}")
    payload_type = media.formats[0] if media.formats else None
    rtpmap = media.rtpmap(payload_type) if payload_type is not None else None
    if rtpmap is None and payload_type is not None and offered is not None:
        rtpmap = offered.rtpmap(payload_type)
    refused = media.refused
    if refused:
        warnings.append("device refused the stream (port 0)")
    return MediaTarget(
        address=address,
        port=media.port,
        transport=transport,
        setup=setup,
        ssrc=ssrc,
        encoding=rtpmap.encoding.upper() if rtpmap else None,
        payload_type=payload_type,
        refused=refused,
        warnings=tuple(warnings),
    )


def ssrc_matches(expected: int | None, received: int) -> bool:
    """True when an RTP packet's SSRC is the negotiated one. Callers accept the first SSRC
    seen on the negotiated port anyway (devices differ) and log when this is False."""
    return expected is None or expected == received
