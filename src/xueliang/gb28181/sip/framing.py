"""Sans-I/O framing of SIP over a byte stream (TCP, RFC 3261 section 18.3).

Feed whatever the socket read returned; complete messages come out, split by the blank line and
Content-Length. CRLF keepalives between messages (RFC 5626) are skipped. The buffer is bounded:
a header block or body over its limit is a ParseError, and so is anything after a ParseError
(the stream has lost its framing; the connection should be closed).
"""

from __future__ import annotations

from xueliang.gb28181.errors import ParseError
from xueliang.gb28181.sip.message import BLANK_LINE_RE, SipMessage, parse_head

DEFAULT_MAX_HEADER_BYTES = 16 * 1024
# Catalogue answers from NVRs with hundreds of channels are the largest bodies seen; 1 MiB
# leaves room while keeping a hostile peer from growing the buffer without end.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024


class StreamFramer:
    def __init__(
        self,
        *,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self._max_header = max_header_bytes
        self._max_body = max_body_bytes
        self._buffer = bytearray()
        # Where the search for the blank line resumes: re-scanning a growing header block from
        # the start on every small read would be quadratic.
        self._scanned = 0
        self._broken: str | None = None

    @property
    def buffered(self) -> int:
        """Bytes held that do not yet form a complete message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[SipMessage]:
        """Add bytes; return every message they complete, in order."""
        if self._broken is not None:
            raise ParseError(f"stream already failed: {self._broken}")
        self._buffer += data
        messages: list[SipMessage] = []
        try:
            while (message := self._next()) is not None:
                messages.append(message)
        except ParseError as exc:
            self._broken = str(exc)
            self._buffer.clear()
            raise
        return messages

    def _next(self) -> SipMessage | None:
        self._skip_keepalives()
        if not self._buffer:
            return None
        match = BLANK_LINE_RE.search(self._buffer, max(0, self._scanned - 3), self._max_header + 4)
        if match is None:
            if len(self._buffer) > self._max_header:
                raise ParseError(f"header block over {self._max_header} bytes")
            self._scanned = len(self._buffer)
            return None
        head = parse_head(bytes(self._buffer[: match.start()]))
        # Over a stream Content-Length is mandatory (RFC 3261 18.3); devices that leave it out
        # send no body, so missing counts as zero rather than as an error.
        length = head.content_length or 0
        if length > self._max_body:
            raise ParseError(f"Content-Length {length} over the limit of {self._max_body}")
        end = match.end() + length
        if len(self._buffer) < end:
            self._scanned = match.start()  # the head is complete; only the body is awaited
            return None
        body = bytes(self._buffer[match.end() : end])
        del self._buffer[:end]
        self._scanned = 0
        return head.with_body(body)

    def _skip_keepalives(self) -> None:
        count = 0
        while count < len(self._buffer) and self._buffer[count] in b"\r\n":
            count += 1
        if count:
            del self._buffer[:count]
            self._scanned = 0
