"""The SDP data model GB/T 28181 uses, and its serialiser.

The enums (session type, transport, TCP setup role, direction), the rtpmap, m= section, ``f=``
line, o= line and whole session description as frozen dataclasses; ``to_bytes`` writes a session
description back out with CRLF in the order GB examples use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from xueliang.gb28181.errors import ParseError

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
