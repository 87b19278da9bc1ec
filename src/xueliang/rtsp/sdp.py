"""The parts of an RTSP session description (RFC 8866) a client needs to pull media.

Per media section: its kind, payload types, each type's encoding, clock and channels
(``a=rtpmap``, or the static table for types without one), format parameters (``a=fmtp``) and
the control URL (``a=control``). Lines this client does not use are ignored; a description
without any media is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urljoin


class SdpError(ValueError):
    """The server's session description cannot be used."""


# RFC 3551's static payload types that cameras send without an rtpmap line.
STATIC = {
    0: ("PCMU", 8000, 1),
    8: ("PCMA", 8000, 1),
    26: ("JPEG", 90000, 1),
    33: ("MP2T", 90000, 1),
}


@dataclass(frozen=True)
class Format:
    payload_type: int
    encoding: str  # upper case: H264, H265, MPEG4-GENERIC, PCMA …
    clock_rate: int
    channels: int
    parameters: dict[str, str]  # a=fmtp, names in lower case


@dataclass
class Media:
    kind: str  # video, audio, application …
    formats: list[Format]
    control: str | None = None


@dataclass
class SessionDescription:
    media: list[Media] = field(default_factory=list)
    control: str | None = None

    def control_url(self, base: str, media: Media) -> str:
        """Where to SETUP ``media`` (RFC 2326 C.1.1): absolute as given, or relative to the
        session's control URL (itself relative to ``base``)."""
        session = base
        if self.control and self.control != "*":
            session = _join(base, self.control)
        if not media.control or media.control == "*":
            return session
        return _join(session, media.control)


def _join(base: str, ref: str) -> str:
    if "://" in ref:
        return ref
    # Relative to the base as a directory: "rtsp://cam/live" + "track1" is
    # "rtsp://cam/live/track1", which is what cameras mean (RFC 3986 would drop "live").
    return urljoin(base if base.endswith("/") else base + "/", ref)


def parse_sdp(text: str) -> SessionDescription:
    session = SessionDescription()
    current: Media | None = None
    rtpmap: dict[int, tuple[str, int, int]] = {}
    fmtp: dict[int, dict[str, str]] = {}
    order: list[int] = []

    def finish() -> None:
        if current is None:
            return
        for pt in order:
            encoding, clock, channels = rtpmap.get(pt) or STATIC.get(pt) or ("", 0, 1)
            current.formats.append(Format(pt, encoding, clock, channels, fmtp.get(pt, {})))

    for raw in text.splitlines():
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:]
        if kind == "m":
            finish()
            parts = value.split()
            if len(parts) < 4:
                raise SdpError(f"malformed media line {line[:80]!r}")
            order = [int(p) for p in parts[3:] if p.isdigit()]
            rtpmap, fmtp = {}, {}
            current = Media(kind=parts[0].lower(), formats=[])
            session.media.append(current)
        elif kind == "a":
            name, _, attr = value.partition(":")
            if name == "control":
                if current is None:
                    session.control = attr.strip()
                else:
                    current.control = attr.strip()
            elif current is not None and name == "rtpmap":
                pt_text, _, spec = attr.strip().partition(" ")
                if not pt_text.isdigit():
                    continue
                bits = spec.strip().split("/")
                try:
                    clock = int(bits[1]) if len(bits) > 1 else 0
                    channels = int(bits[2]) if len(bits) > 2 and bits[2] else 1
                except ValueError:
                    continue
                rtpmap[int(pt_text)] = (bits[0].upper(), clock, channels)
            elif current is not None and name == "fmtp":
                pt_text, _, params = attr.strip().partition(" ")
                if pt_text.isdigit():
                    fmtp[int(pt_text)] = _fmtp(params)
    finish()
    if not session.media:
        raise SdpError("the session description has no media")
    return session


def _fmtp(params: str) -> dict[str, str]:
    out = {}
    for item in params.split(";"):
        name, sep, value = item.strip().partition("=")
        if sep and name:
            out[name.strip().lower()] = value.strip()
    return out
