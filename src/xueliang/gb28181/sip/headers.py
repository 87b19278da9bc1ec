"""SIP header names and the ordered, case-insensitive header multi-map.

Names are normalised on the way in: compact forms (``v``, ``f``, ``i``...) become their full
names and well-known names get their canonical spelling, so ``via``, ``VIA`` and ``v`` all end up
as ``Via``. Unknown names keep the spelling they arrived with and are compared without case.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from xueliang.gb28181.errors import ParseError

# RFC 3261 section 20 and the RFCs that define the other compact forms.
COMPACT_FORMS: dict[str, str] = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

_CANONICAL_NAMES = (
    "Accept",
    "Accept-Contact",
    "Accept-Encoding",
    "Accept-Language",
    "Alert-Info",
    "Allow",
    "Allow-Events",
    "Authentication-Info",
    "Authorization",
    "Call-ID",
    "Call-Info",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-Type",
    "CSeq",
    "Date",
    "Error-Info",
    "Event",
    "Expires",
    "From",
    "Identity",
    "Identity-Info",
    "In-Reply-To",
    "Max-Forwards",
    "MIME-Version",
    "Min-Expires",
    "Monitor-User-Identity",
    "Organization",
    "Priority",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "Reason",
    "Record-Route",
    "Refer-To",
    "Referred-By",
    "Reject-Contact",
    "Reply-To",
    "Request-Disposition",
    "Require",
    "Retry-After",
    "Route",
    "Server",
    "Session-Expires",
    "Subject",
    "Subscription-State",
    "Supported",
    "Timestamp",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
    "Warning",
    "WWW-Authenticate",
    "X-GB-Ver",
)
_CANONICAL = {name.lower(): name for name in _CANONICAL_NAMES}

# Headers whose comma-separated values are separate entries (RFC 3261 section 7.3.1). Only
# those that are safe to split are listed: the auth headers have commas inside one value.
LIST_HEADERS = frozenset({"via", "route", "record-route", "contact"})

_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")


def canonical_name(name: str) -> str:
    """The full, canonically spelt name for ``name``; ParseError if it is not a token."""
    name = name.strip()
    if not _TOKEN_RE.fullmatch(name):
        raise ParseError(f"invalid header name {name!r}")
    lower = name.lower()
    if len(lower) == 1 and lower in COMPACT_FORMS:
        return COMPACT_FORMS[lower]
    return _CANONICAL.get(lower, name)


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value, keeping commas inside quotes and <...>."""
    parts: list[str] = []
    current: list[str] = []
    in_quotes = False
    in_angle = False
    escaped = False
    for ch in value:
        if escaped:
            escaped = False
        elif in_quotes and ch == "\\":
            escaped = True
        elif ch == '"':
            in_quotes = not in_quotes
        elif not in_quotes and ch == "<":
            in_angle = True
        elif not in_quotes and ch == ">":
            in_angle = False
        elif ch == "," and not in_quotes and not in_angle:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    parts.append("".join(current).strip())
    return [part for part in parts if part]


class Headers:
    """Ordered multi-map of header fields; names compare without case, order is kept."""

    __slots__ = ("_fields",)

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        self._fields: list[tuple[str, str]] = []
        for name, value in fields:
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        """Append a field (after any of the same name)."""
        self._fields.append((canonical_name(name), _clean_value(value)))

    def set(self, name: str, value: str) -> None:
        """Replace every field called ``name`` by one, where the first of them stood."""
        name = canonical_name(name)
        key = name.lower()
        value = _clean_value(value)
        for index, (existing, _) in enumerate(self._fields):
            if existing.lower() == key:
                self._fields[index] = (name, value)
                self._fields = [
                    field
                    for i, field in enumerate(self._fields)
                    if i <= index or field[0].lower() != key
                ]
                return
        self._fields.append((name, value))

    def prepend(self, name: str, value: str) -> None:
        """Put a field before all others of its name (how a Via is added)."""
        name = canonical_name(name)
        key = name.lower()
        for index, (existing, _) in enumerate(self._fields):
            if existing.lower() == key:
                self._fields.insert(index, (name, _clean_value(value)))
                return
        self._fields.append((name, _clean_value(value)))

    def remove(self, name: str) -> None:
        key = canonical_name(name).lower()
        self._fields = [field for field in self._fields if field[0].lower() != key]

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name``, or ``default``."""
        key = canonical_name(name).lower()
        for existing, value in self._fields:
            if existing.lower() == key:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        key = canonical_name(name).lower()
        return [value for existing, value in self._fields if existing.lower() == key]

    def copy(self) -> Headers:
        headers = Headers()
        headers._fields = list(self._fields)
        return headers

    def items(self) -> list[tuple[str, str]]:
        return list(self._fields)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._fields))

    def __len__(self) -> int:
        return len(self._fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self._fields == other._fields

    def __repr__(self) -> str:
        return f"Headers({self._fields!r})"


def _clean_value(value: str) -> str:
    value = value.strip()
    # A CR or LF inside a value would let a caller inject header lines into what is serialised.
    if "\r" in value or "\n" in value:
        raise ParseError(f"header value contains a line break: {value!r}")
    return value
