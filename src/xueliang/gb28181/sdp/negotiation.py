"""Offer/Answer for GB/T 28181 INVITEs: the platform's offer, a device's answer, reading the
answer against the offer (:func:`answer_target`), and the ``y=`` SSRC (make and match).
"""

from __future__ import annotations

from dataclasses import dataclass

from xueliang.gb28181.sdp.model import (
    DEFAULT_VIDEO_FORMATS,
    PS,
    Direction,
    Media,
    MediaFormat,
    Origin,
    RtpMap,
    SessionDescription,
    SessionType,
    Setup,
    Transport,
)


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
