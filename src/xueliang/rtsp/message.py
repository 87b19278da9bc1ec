"""RTSP messages on a TCP connection: requests out, responses and interleaved RTP in.

``RtspReader`` splits what the server sends into responses and interleaved frames ('$',
channel, 16-bit length, RFC 2326 10.12). It is on the per-packet path, so an interleaved frame
is a plain ``(channel, payload)`` tuple whose payload is a view into the bytes received (no
copy). A server may also send requests (some cameras send ANNOUNCE or GET_PARAMETER); those are
reported so the client can answer them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# A message head larger than this is garbage, not a slow server.
MAX_HEAD = 64 * 1024
MAX_BODY = 1024 * 1024


class RtspProtocolError(ValueError):
    """The server sent something that is not RTSP."""


@dataclass(frozen=True)
class RtspRequest:
    method: str
    url: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def serialise(self) -> bytes:
        lines = [f"{self.method} {self.url} RTSP/1.0"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        if self.body:
            lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


@dataclass(frozen=True)
class RtspResponse:
    status: int
    reason: str
    headers: dict[str, str]  # lower-case names; a repeated header's values joined by ", "
    body: bytes = b""

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    @property
    def cseq(self) -> int | None:
        value = self.headers.get("cseq", "").strip()
        return int(value) if value.isdigit() else None


@dataclass(frozen=True)
class ServerRequest:
    """A request from the server to the client (ANNOUNCE, GET_PARAMETER, SET_PARAMETER…)."""

    method: str
    headers: dict[str, str]
    body: bytes = b""


Interleaved = tuple[int, memoryview]


@dataclass(slots=True)
class Batch:
    """Every interleaved frame of one channel in a read, as offsets into ``data``: the
    payload of frame i is ``data[spans[2 * i] : spans[2 * i + 1]]``. For the channels named in
    ``RtspReader.batch_channels`` (video: ~350 RTP packets a second at 4 Mbit/s), so that the
    depacketizer takes a read's packets in one call, without an object per packet."""

    channel: int
    data: bytes
    spans: list[int]


RtspEvent = RtspResponse | ServerRequest | Interleaved | Batch


def _parse_head(head: bytes) -> tuple[str, dict[str, str]]:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = head.decode("latin-1")
    lines = text.split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise RtspProtocolError(f"malformed header line {line[:80]!r}")
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return lines[0], headers


class RtspReader:
    """Bytes in, events out. Keeps only the unfinished tail between calls."""

    def __init__(self) -> None:
        self._data = b""
        self._pos = 0
        self.skipped = 0  # bytes thrown away to find the next message again
        self.batch_channels: frozenset[int] = frozenset()
        self.messages = 0  # RTSP messages (not media) in the last feed

    def feed(self, chunk: bytes) -> list[RtspEvent]:
        data = self._data[self._pos :] + chunk if self._pos < len(self._data) else chunk
        view = memoryview(data)
        pos, end = 0, len(data)
        events: list[RtspEvent] = []
        batches: dict[int, list[int]] = {c: [] for c in self.batch_channels}
        messages = 0
        while pos < end:
            if data[pos] == 0x24:  # '$'
                if end - pos < 4:
                    break
                channel = data[pos + 1]
                nxt = pos + 4 + ((data[pos + 2] << 8) | data[pos + 3])
                if nxt > end:
                    break
                spans = batches.get(channel)
                if spans is None:
                    events.append((channel, view[pos + 4 : nxt]))
                else:
                    spans += (pos + 4, nxt)
                pos = nxt
                continue
            if data.startswith(b"RTSP/", pos) or _looks_like_request(data, pos):
                head_end = data.find(b"\r\n\r\n", pos)
                if head_end < 0:
                    if end - pos > MAX_HEAD:
                        raise RtspProtocolError("a message head without an end")
                    break
                start_line, headers = _parse_head(data[pos:head_end])
                length_text = headers.get("content-length", "0").strip() or "0"
                if not length_text.isdigit() or int(length_text) > MAX_BODY:
                    raise RtspProtocolError(f"bad Content-Length {length_text[:20]!r}")
                length = int(length_text)
                body_start = head_end + 4
                if end - body_start < length:
                    break
                body = data[body_start : body_start + length]
                events.append(_message(start_line, headers, body))
                messages += 1
                pos = body_start + length
                continue
            if _could_start(data, pos):
                break  # the first bytes of a message: wait for the rest
            # Neither: garbage between messages (a camera's stray bytes, a lost frame's tail).
            # Skip to the next '$' or 'RTSP/', as players do.
            nxt = _resync(data, pos + 1)
            self.skipped += (nxt if nxt >= 0 else end) - pos
            if nxt < 0:
                pos = end
                break
            pos = nxt
        self._data, self._pos = data, pos
        self.messages = messages
        for channel, spans in batches.items():
            if spans:
                events.append(Batch(channel, data, spans))
        return events


_STARTS = (b"RTSP/", b"ANNOUNCE ", b"GET_PARAMETER ", b"SET_PARAMETER ", b"OPTIONS ", b"REDIRECT ")


def _looks_like_request(data: bytes, pos: int) -> bool:
    return any(data.startswith(method, pos) for method in _STARTS[1:])


def _could_start(data: bytes, pos: int) -> bool:
    """The rest of ``data`` is shorter than a message's first word and could begin one."""
    tail = data[pos:]
    return len(tail) < 14 and any(start.startswith(tail) for start in _STARTS)


def _resync(data: bytes, pos: int) -> int:
    dollar = data.find(b"$", pos)
    rtsp = data.find(b"RTSP/", pos)
    found = [i for i in (dollar, rtsp) if i >= 0]
    return min(found) if found else -1


def _message(start_line: str, headers: dict[str, str], body: bytes) -> RtspEvent:
    parts = start_line.split(" ", 2)
    if start_line.startswith("RTSP/"):
        if len(parts) < 2 or not parts[1].isdigit():
            raise RtspProtocolError(f"malformed status line {start_line[:80]!r}")
        return RtspResponse(int(parts[1]), parts[2] if len(parts) > 2 else "", headers, body)
    return ServerRequest(parts[0], headers, body)
