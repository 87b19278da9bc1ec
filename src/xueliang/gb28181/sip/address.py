"""Typed views of the structured SIP header values: SIP URIs, name-addr (From/To/Contact),
Via and CSeq, each parsed from and serialised back to text.

Parameters are kept in a dict in arrival order with lower-case names (SIP parameter names are
case-insensitive); a parameter without a value (``;lr``, ``;rport``) maps to ``None``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from xueliang.gb28181.errors import ParseError

Params = dict[str, str | None]

_SIP_WORD = r"[A-Za-z0-9\-.!%*_+`'~]+"
_TOKEN_RE = re.compile(_SIP_WORD)
_HOST_RE = re.compile(r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._]+")
_METHOD_RE = re.compile(_SIP_WORD)


def ascii_digits(text: str) -> bool:
    """1 to 10 ASCII digits: str.isdigit() also accepts superscripts that int() rejects, and
    int() refuses very long digit strings; no SIP number needs more than 32 bits."""
    return 0 < len(text) <= 10 and text.isascii() and text.isdigit()


def parse_params(text: str, where: str) -> Params:
    """Parse ``;name=value;flag`` (the leading ``;`` optional); values may be quoted."""
    params: Params = {}
    for raw in _split_outside_quotes(text, ";"):
        raw = raw.strip()
        if not raw:
            continue
        name, sep, value = raw.partition("=")
        name = name.strip().lower()
        if not _TOKEN_RE.fullmatch(name):
            raise ParseError(f"invalid parameter {raw!r} in {where}")
        params[name] = value.strip() if sep else None
    return params


def format_params(params: Mapping[str, str | None]) -> str:
    return "".join(
        f";{name}" if value is None else f";{name}={value}" for name, value in params.items()
    )


def unquote(value: str) -> str:
    """Strip surrounding double quotes and resolve backslash escapes; other text unchanged."""
    value = value.strip()
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    in_quotes = False
    escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif in_quotes and ch == "\\":
            escaped = True
        elif ch == '"':
            in_quotes = not in_quotes
        elif ch == sep and not in_quotes:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    if in_quotes:
        raise ParseError(f"unterminated quoted string in {text!r}")
    parts.append("".join(current))
    return parts


def _parse_port(text: str, where: str) -> int:
    text = text.strip()
    if not ascii_digits(text) or not 0 < int(text) < 65536:
        raise ParseError(f"invalid port {text!r} in {where}")
    return int(text)


def _parse_hostport(text: str, where: str) -> tuple[str, int | None]:
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ParseError(f"unterminated IPv6 reference in {where}")
        host, rest = text[: end + 1], text[end + 1 :]
    else:
        host, colon, port_text = text.partition(":")
        rest = colon + port_text
    if not _HOST_RE.fullmatch(host):
        raise ParseError(f"invalid host {host!r} in {where}")
    if not rest:
        return host, None
    if not rest.startswith(":"):
        raise ParseError(f"unexpected {rest!r} after host in {where}")
    return host, _parse_port(rest[1:], where)


def _format_hostport(host: str, port: int | None) -> str:
    return host if port is None else f"{host}:{port}"


@dataclass(frozen=True)
class SipUri:
    """``sip:user:password@host:port;params?headers`` (GB/T 28181 users are 20-digit IDs and
    hosts are often a 10-digit domain rather than a DNS name)."""

    host: str
    user: str | None = None
    port: int | None = None
    params: Params = field(default_factory=dict)
    password: str | None = None
    headers: str | None = None
    scheme: str = "sip"

    @classmethod
    def parse(cls, text: str) -> SipUri:
        where = f"URI {text!r}"
        text = text.strip()
        scheme, colon, rest = text.partition(":")
        scheme = scheme.lower()
        if not colon or scheme not in ("sip", "sips"):
            raise ParseError(f"not a sip: or sips: URI: {text!r}")
        rest, question, uri_headers = rest.partition("?")
        userinfo, at, hostpart = rest.rpartition("@")
        user = password = None
        if at:
            user, pcolon, pw = userinfo.partition(":")
            if not user:
                raise ParseError(f"empty user in {where}")
            password = pw if pcolon else None
        hostport, _, param_text = hostpart.partition(";")
        host, port = _parse_hostport(hostport, where)
        return cls(
            host=host,
            user=user,
            port=port,
            params=parse_params(param_text, where),
            password=password,
            headers=uri_headers if question else None,
            scheme=scheme,
        )

    def __str__(self) -> str:
        userinfo = ""
        if self.user is not None:
            userinfo = self.user
            if self.password is not None:
                userinfo += ":" + self.password
            userinfo += "@"
        text = f"{self.scheme}:{userinfo}{_format_hostport(self.host, self.port)}"
        text += format_params(self.params)
        if self.headers is not None:
            text += "?" + self.headers
        return text

    @property
    def transport(self) -> str | None:
        value = self.params.get("transport")
        return value.upper() if value else None


@dataclass(frozen=True)
class NameAddr:
    """A From, To, Contact, Route or Record-Route value: optional display name, URI, and the
    header's own parameters (``tag``, ``expires``...), which are not the URI's."""

    uri: SipUri
    display_name: str | None = None
    params: Params = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        where = f"address {text!r}"
        text = text.strip()
        if not text:
            raise ParseError("empty address")
        lt = _find_unquoted(text, "<")
        if lt >= 0:
            gt = text.find(">", lt)
            if gt < 0:
                raise ParseError(f"missing '>' in {where}")
            display = text[:lt].strip()
            uri = SipUri.parse(text[lt + 1 : gt])
            rest = text[gt + 1 :].strip()
            if rest and not rest.startswith(";"):
                raise ParseError(f"unexpected {rest!r} after '>' in {where}")
            return cls(
                uri=uri, display_name=unquote(display) or None, params=parse_params(rest, where)
            )
        # addr-spec without brackets: everything after the first ';' belongs to the header
        # (RFC 3261 section 20.10), so ``sip:a@b;tag=1`` has a tag, not a URI parameter.
        uri_text, _, rest = text.partition(";")
        if " " in uri_text.strip():
            raise ParseError(f"display name without <uri> in {where}")
        return cls(uri=SipUri.parse(uri_text), params=parse_params(rest, where))

    def __str__(self) -> str:
        display = ""
        if self.display_name:
            display = (
                self.display_name
                if _TOKEN_RE.fullmatch(self.display_name)
                else quote(self.display_name)
            ) + " "
        return f"{display}<{self.uri}>{format_params(self.params)}"

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def with_tag(self, tag: str) -> NameAddr:
        return replace(self, params={**self.params, "tag": tag})

    @property
    def expires(self) -> int | None:
        value = self.params.get("expires")
        if value is None:
            return None
        value = unquote(value)
        if not ascii_digits(value):
            raise ParseError(f"invalid expires parameter {value!r}")
        return int(value)


def _find_unquoted(text: str, char: str) -> int:
    in_quotes = False
    escaped = False
    for index, ch in enumerate(text):
        if escaped:
            escaped = False
        elif in_quotes and ch == "\\":
            escaped = True
        elif ch == '"':
            in_quotes = not in_quotes
        elif ch == char and not in_quotes:
            return index
    return -1


_VIA_RE = re.compile(
    r"\s*SIP\s*/\s*2\.0\s*/\s*(?P<transport>" + _SIP_WORD + r")\s+(?P<rest>.*)\Z",
    re.IGNORECASE | re.DOTALL,
)


@dataclass(frozen=True)
class Via:
    """One Via entry: ``SIP/2.0/UDP host:port;branch=...;rport;received=...``."""

    transport: str
    host: str
    port: int | None = None
    params: Params = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Via:
        where = f"Via {text!r}"
        match = _VIA_RE.match(text)
        if not match:
            raise ParseError(f"malformed {where}")
        sent_by, _, param_text = match["rest"].partition(";")
        host, port = _parse_hostport(sent_by, where)
        return cls(
            transport=match["transport"].upper(),
            host=host,
            port=port,
            params=parse_params(param_text, where),
        )

    def __str__(self) -> str:
        return f"SIP/2.0/{self.transport} {_format_hostport(self.host, self.port)}" + (
            format_params(self.params)
        )

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def has_rport(self) -> bool:
        return "rport" in self.params

    @property
    def rport(self) -> int | None:
        """The rport value a server filled in; None when absent or asked for without a value."""
        value = self.params.get("rport")
        return _parse_port(value, "Via rport") if value else None

    @property
    def sent_by(self) -> str:
        return _format_hostport(self.host, self.port)

    def with_received(self, host: str, port: int) -> Via:
        """The Via as a server stamps it (RFC 3581): received always, rport filled in when the
        client asked for it. NAT'd devices need both to get their responses back."""
        params = dict(self.params)
        params["received"] = host
        if "rport" in params:
            params["rport"] = str(port)
        return replace(self, params=params)


@dataclass(frozen=True)
class CSeq:
    seq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        parts = text.split()
        if len(parts) != 2 or not ascii_digits(parts[0]) or not _METHOD_RE.fullmatch(parts[1]):
            raise ParseError(f"malformed CSeq {text!r}")
        seq = int(parts[0])
        if seq >= 2**32:
            raise ParseError(f"CSeq number out of range in {text!r}")
        return cls(seq=seq, method=parts[1].upper())

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"
