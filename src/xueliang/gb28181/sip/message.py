"""SIP requests and responses (RFC 3261 section 7): parse from bytes, serialise to bytes.

The parser is structural and tolerant of what GB/T 28181 devices send: header names in any case
and in compact form, spaces around colons and in the start line, LF-only line ends, folded
lines, comma-joined Via values, no Max-Forwards, Content-Type in odd case. Typed header values
(Via, From, To, CSeq...) are parsed on access, so one malformed header the platform never reads
does not lose the message; an accessor raises ParseError when its header is missing or bad.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from xueliang.gb28181.errors import ParseError
from xueliang.gb28181.sip.address import (
    CSeq,
    NameAddr,
    Params,
    SipUri,
    Via,
    ascii_digits,
    parse_params,
)
from xueliang.gb28181.sip.headers import LIST_HEADERS, Headers, split_list

SIP_VERSION = "SIP/2.0"
BRANCH_MAGIC = "z9hG4bK"

REASONS: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    415: "Unsupported Media Type",
    420: "Bad Extension",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}

_METHOD_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
BLANK_LINE_RE = re.compile(rb"\r?\n\r?\n")
_LINE_END_RE = re.compile(r"\r?\n")
# Request-URIs GB devices send are sip: URIs, but a tel: or other absolute URI is valid SIP.
_URI_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*:\S+")


class _HeaderAccess:
    """Typed accessors shared by requests and responses."""

    headers: Headers
    body: bytes

    def _required(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise ParseError(f"missing {name} header")
        return value

    @property
    def vias(self) -> list[Via]:
        return [
            Via.parse(part) for value in self.headers.get_all("Via") for part in split_list(value)
        ]

    @property
    def top_via(self) -> Via:
        vias = self.vias
        if not vias:
            raise ParseError("missing Via header")
        return vias[0]

    @property
    def from_(self) -> NameAddr:
        return NameAddr.parse(self._required("From"))

    @property
    def to(self) -> NameAddr:
        return NameAddr.parse(self._required("To"))

    @property
    def call_id(self) -> str:
        value = self._required("Call-ID")
        if not value:
            raise ParseError("empty Call-ID header")
        return value

    @property
    def cseq(self) -> CSeq:
        return CSeq.parse(self._required("CSeq"))

    @property
    def contact_is_wildcard(self) -> bool:
        """``Contact: *`` (a REGISTER removing every binding)."""
        return any(value.strip() == "*" for value in self.headers.get_all("Contact"))

    @property
    def contacts(self) -> list[NameAddr]:
        return [
            NameAddr.parse(part)
            for value in self.headers.get_all("Contact")
            for part in split_list(value)
            if part != "*"
        ]

    @property
    def expires(self) -> int | None:
        """The Expires header; a REGISTER may instead carry ``;expires=`` on its Contact."""
        return _optional_int(self.headers.get("Expires"), "Expires")

    @property
    def registration_expires(self) -> int | None:
        """A REGISTER's requested lifetime: the first Contact's ``expires`` parameter, which
        RFC 3261 10.2.1.1 puts first and some devices send instead of an Expires header, then
        the Expires header; None when neither is there."""
        for contact in self.contacts:
            if contact.expires is not None:
                return contact.expires
        return self.expires

    @property
    def max_forwards(self) -> int | None:
        return _optional_int(self.headers.get("Max-Forwards"), "Max-Forwards")

    @property
    def content_type(self) -> str | None:
        """Media type in lower case without parameters: ``application/manscdp+xml``."""
        value = self.headers.get("Content-Type")
        if value is None:
            return None
        return value.partition(";")[0].strip().lower() or None

    @property
    def content_type_params(self) -> Params:
        value = self.headers.get("Content-Type")
        if value is None:
            return {}
        return parse_params(value.partition(";")[2], "Content-Type")

    @property
    def branch(self) -> str | None:
        return self.top_via.branch

    def _head_lines(self) -> list[str]:
        lines: list[str] = []
        wrote_length = False
        for name, value in self.headers:
            if name == "Content-Length":
                if wrote_length:
                    continue
                value = str(len(self.body))
                wrote_length = True
            lines.append(f"{name}: {value}")
        if not wrote_length:
            lines.append(f"Content-Length: {len(self.body)}")
        return lines


@dataclass(eq=True)
class SipRequest(_HeaderAccess):
    method: str
    uri: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = SIP_VERSION

    def to_bytes(self) -> bytes:
        """Serialise; Content-Length is always written and always matches the body."""
        lines = [f"{self.method} {self.uri} {self.version}", *self._head_lines()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + self.body

    @property
    def request_uri(self) -> SipUri:
        return SipUri.parse(self.uri)


@dataclass(eq=True)
class SipResponse(_HeaderAccess):
    status: int
    reason: str = ""
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = SIP_VERSION

    def __post_init__(self) -> None:
        if not self.reason:
            self.reason = REASONS.get(self.status, "")

    def to_bytes(self) -> bytes:
        lines = [f"{self.version} {self.status} {self.reason}".rstrip(), *self._head_lines()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + self.body

    @property
    def provisional(self) -> bool:
        return self.status < 200

    @property
    def success(self) -> bool:
        return 200 <= self.status < 300


SipMessage = SipRequest | SipResponse


def _optional_int(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    value = value.strip()
    if not ascii_digits(value):
        raise ParseError(f"invalid {name} header {value!r}")
    return int(value)


# --- parsing ------------------------------------------------------------------------------


def split_head(data: bytes) -> tuple[bytes, bytes] | None:
    """Split at the blank line ending the headers (CRLF or bare LF); None if there is none."""
    match = BLANK_LINE_RE.search(data)
    if match is None:
        return None
    return data[: match.start()], data[match.end() :]


def skip_leading_line_ends(data: bytes) -> bytes:
    """RFC 3261 section 7.5: empty lines before the start line are ignored (and over TCP they
    are keepalives, RFC 5626)."""
    return data.lstrip(b"\r\n")


@dataclass
class Head:
    """A parsed start line and headers, before the body is attached."""

    start: tuple[str, str, str]
    headers: Headers
    is_request: bool

    @property
    def content_length(self) -> int | None:
        values = {value.strip() for value in self.headers.get_all("Content-Length")}
        if not values:
            return None
        if len(values) > 1:
            raise ParseError(f"conflicting Content-Length headers {sorted(values)}")
        value = values.pop()
        if not ascii_digits(value):
            raise ParseError(f"invalid Content-Length {value!r}")
        return int(value)

    def with_body(self, body: bytes) -> SipMessage:
        if self.is_request:
            method, uri, version = self.start
            return SipRequest(
                method=method, uri=uri, headers=self.headers, body=body, version=version
            )
        version, status, reason = self.start
        return SipResponse(
            status=int(status), reason=reason, headers=self.headers, body=body, version=version
        )


def parse_head(head: bytes) -> Head:
    """Parse a start line and header lines (no blank line, no body)."""
    text = head.decode("utf-8", "surrogateescape")
    lines = _LINE_END_RE.split(text)
    start_line = lines[0].strip()
    if not start_line:
        raise ParseError("empty start line")
    start, is_request = _parse_start_line(start_line)
    headers = Headers()
    current: list[str] | None = None
    fields: list[tuple[str, list[str]]] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        if line[0] in " \t":
            # Folded continuation of the previous header (RFC 3261 section 7.3.1).
            if current is None:
                raise ParseError(f"line {number}: continuation line before any header")
            current.append(line.strip())
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise ParseError(f"line {number}: header line without ':': {line[:80]!r}")
        current = [value.strip()]
        fields.append((name, current))
    for name, parts in fields:
        value = " ".join(part for part in parts if part)
        try:
            if name.strip().lower() in LIST_HEADERS or name.strip().lower() in ("v", "m"):
                for part in split_list(value) or [""]:
                    headers.add(name, part)
            else:
                headers.add(name, value)
        except ParseError as exc:
            raise ParseError(f"header {name.strip()!r}: {exc}") from None
    return Head(start=start, headers=headers, is_request=is_request)


def _parse_start_line(line: str) -> tuple[tuple[str, str, str], bool]:
    if line[:4].upper() == "SIP/":
        parts = line.split(None, 2)
        if len(parts) < 2:
            raise ParseError(f"malformed status line {line[:80]!r}")
        version = _version(parts[0], line)
        status = parts[1]
        if not (ascii_digits(status) and len(status) == 3 and 100 <= int(status) <= 699):
            raise ParseError(f"invalid status code {status!r} in status line")
        return (version, status, parts[2].strip() if len(parts) == 3 else ""), False
    parts = line.split()
    if len(parts) != 3:
        raise ParseError(f"malformed request line {line[:80]!r}")
    method, uri, version = parts
    if not _METHOD_RE.fullmatch(method):
        raise ParseError(f"invalid method {method!r} in request line")
    if not _URI_RE.fullmatch(uri):
        raise ParseError(f"invalid Request-URI {uri!r}")
    return (method.upper(), uri, _version(version, line)), True


def _version(text: str, line: str) -> str:
    if text.upper() != SIP_VERSION:
        raise ParseError(f"unsupported version {text!r} in {line[:80]!r}")
    return SIP_VERSION


def parse_message(data: bytes) -> SipMessage:
    """Parse one datagram's worth of SIP (UDP). Without Content-Length the body is the rest of
    the datagram; with it, a shorter body is an error and extra bytes are dropped (RFC 3261
    section 18.3)."""
    data = skip_leading_line_ends(data)
    if not data:
        raise ParseError("empty message")
    split = split_head(data)
    head_bytes, rest = split if split is not None else (data.rstrip(b"\r\n"), b"")
    head = parse_head(head_bytes)
    length = head.content_length
    if length is None:
        body = rest
    elif len(rest) < length:
        raise ParseError(f"body is {len(rest)} bytes, Content-Length says {length}")
    else:
        body = rest[:length]
    return head.with_body(body)


# --- building -----------------------------------------------------------------------------


def new_branch() -> str:
    """A fresh RFC 3261 branch (with the magic cookie)."""
    return BRANCH_MAGIC + secrets.token_hex(8)


def new_tag() -> str:
    return secrets.token_hex(6)


def new_call_id(host: str | None = None) -> str:
    token = secrets.token_hex(12)
    return f"{token}@{host}" if host else token


def make_request(
    method: str,
    uri: str,
    *,
    via: Via,
    from_: NameAddr,
    to: NameAddr,
    call_id: str,
    cseq: int,
    contact: NameAddr | None = None,
    max_forwards: int = 70,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> SipRequest:
    """A request with the mandatory headers in the usual order, then ``headers``."""
    method = method.upper()
    fields = Headers()
    fields.add("Via", str(via))
    fields.add("From", str(from_))
    fields.add("To", str(to))
    fields.add("Call-ID", call_id)
    fields.add("CSeq", f"{cseq} {method}")
    if contact is not None:
        fields.add("Contact", str(contact))
    fields.add("Max-Forwards", str(max_forwards))
    for name, value in headers:
        fields.add(name, value)
    if content_type is not None:
        fields.set("Content-Type", content_type)
    return SipRequest(method=method, uri=uri, headers=fields, body=body)


_DIALOG_METHODS = frozenset({"INVITE", "SUBSCRIBE"})


def make_response(
    request: SipRequest,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> SipResponse:
    """A response to ``request`` (RFC 3261 section 8.2.6): Via (all, in order), From, To,
    Call-ID and CSeq copied; a To tag added to every response but 100 when the request had
    none (``to_tag`` or a fresh one: pass the same tag to every response of one dialog)."""
    fields = Headers()
    for value in request.headers.get_all("Via"):
        fields.add("Via", value)
    for name in ("From", "To", "Call-ID", "CSeq"):
        found = request.headers.get(name)
        if found is None:
            raise ParseError(f"request has no {name} header to copy into a response")
        value = found
        if name == "To" and status != 100:
            to = NameAddr.parse(value)
            if to.tag is None:
                value = str(to.with_tag(to_tag or new_tag()))
        fields.add(name, value)
    if request.method in _DIALOG_METHODS and 100 < status < 300:
        for value in request.headers.get_all("Record-Route"):
            fields.add("Record-Route", value)
    for name, value in headers:
        fields.add(name, value)
    if content_type is not None:
        fields.set("Content-Type", content_type)
    return SipResponse(
        status=status, reason=reason or REASONS.get(status, ""), headers=fields, body=body
    )


def stamp_received(request: SipRequest, host: str, port: int) -> None:
    """Record where a request really came from in its top Via (RFC 3261 18.2.1, RFC 3581), so
    the response goes back through the device's NAT binding."""
    vias = request.headers.get_all("Via")
    entries = split_list(vias[0]) if vias else []
    if not entries:
        raise ParseError("missing Via header")
    first, *others = entries
    stamped = str(Via.parse(first).with_received(host, port))
    rest = vias[1:]
    request.headers.set("Via", stamped)  # keeps the top Via where it stood
    for value in [*others, *rest]:
        request.headers.add("Via", value)
