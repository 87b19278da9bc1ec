"""MANSRTSP (GB/T 28181 Appendix B): playback control carried in SIP INFO, sans-I/O.

An RTSP-like request in the INFO body steers a Playback session: PLAY with ``Range: npt=T-``
(seek to T seconds from the session's start, ``now-`` to resume), PLAY with ``Scale: S`` (speed:
0.25 … 8, negative for reverse where a device can), PAUSE with ``PauseTime: now``, TEARDOWN.
``build`` makes the body, ``parse`` reads one (the simulator and a cascade's upper side).
"""

from __future__ import annotations

from dataclasses import dataclass

from xueliang.gb28181.errors import ParseError

CONTENT_TYPE = "Application/MANSRTSP"
METHODS = ("PLAY", "PAUSE", "TEARDOWN")
MAX_BODY = 2048


@dataclass(frozen=True, slots=True)
class Control:
    method: str  # PLAY, PAUSE, TEARDOWN
    cseq: int
    scale: float | None = None  # PLAY: the new speed
    seek: float | None = None  # PLAY: seconds from the start of the played range
    resume: bool = False  # PLAY with Range: npt=now-

    def to_bytes(self) -> bytes:
        lines = [f"{self.method} RTSP/1.0", f"CSeq: {self.cseq}"]
        if self.method == "PAUSE":
            lines.append("PauseTime: now")
        if self.scale is not None:
            lines.append(f"Scale: {_number(self.scale)}")
        if self.seek is not None:
            lines.append(f"Range: npt={_number(self.seek)}-")
        elif self.resume:
            lines.append("Range: npt=now-")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def pause(cseq: int) -> Control:
    return Control("PAUSE", cseq)


def resume(cseq: int) -> Control:
    return Control("PLAY", cseq, resume=True)


def speed(cseq: int, scale: float) -> Control:
    if not (0.0 < abs(scale) <= 64.0):
        raise ValueError(f"scale must be non-zero and at most 64, got {scale}")
    return Control("PLAY", cseq, scale=scale)


def seek(cseq: int, seconds: float) -> Control:
    if seconds < 0:
        raise ValueError(f"seek position must not be negative, got {seconds}")
    return Control("PLAY", cseq, seek=seconds)


def parse(data: bytes) -> Control:
    """Read a MANSRTSP body; ParseError for anything that is not one."""
    if len(data) > MAX_BODY:
        raise ParseError(f"MANSRTSP body of {len(data)} bytes is too long")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ParseError("MANSRTSP body is not ASCII") from exc
    lines = [line.strip() for line in text.replace("\r\n", "\n").split("\n") if line.strip()]
    if not lines:
        raise ParseError("empty MANSRTSP body")
    parts = lines[0].split()
    if len(parts) != 2 or not parts[1].upper().startswith("RTSP/"):
        raise ParseError(f"bad MANSRTSP request line {lines[0][:60]!r}")
    method = parts[0].upper()
    if method not in METHODS:
        raise ParseError(f"unknown MANSRTSP method {method[:20]!r}")
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            raise ParseError(f"bad MANSRTSP header line {line[:60]!r}")
        fields[name.strip().lower()] = value.strip()
    try:
        cseq = int(fields.get("cseq", ""))
    except ValueError as exc:
        raise ParseError("MANSRTSP CSeq missing or not a number") from exc
    scale = _float(fields.get("scale"), "Scale")
    seek_to: float | None = None
    resumed = False
    npt = fields.get("range")
    if npt is not None:
        if not npt.lower().startswith("npt="):
            raise ParseError(f"MANSRTSP Range is not npt: {npt[:40]!r}")
        start = npt[4:].split("-", 1)[0].strip()
        if start.lower() == "now" or not start:
            resumed = True
        else:
            seek_to = _float(start, "Range")
            if seek_to is not None and seek_to < 0:
                raise ParseError("MANSRTSP Range before the start")
    return Control(method, cseq, scale=scale, seek=seek_to, resume=resumed)


def _float(value: str | None, what: str) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError as exc:
        raise ParseError(f"MANSRTSP {what} is not a number: {value[:20]!r}") from exc
    if number != number or number in (float("inf"), float("-inf")):
        raise ParseError(f"MANSRTSP {what} is not finite")
    return number
