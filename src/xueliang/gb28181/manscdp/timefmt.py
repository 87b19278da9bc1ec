"""The one lenient reader for the times MANSCDP carries, and the strict writer.

The standard writes local time as ``2026-01-05T08:03:00``. Devices also send ``2026-1-5T8:3:0``,
a blank instead of ``T``, milliseconds, or a zone suffix; all of them are read here.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from xueliang.gb28181.errors import ParseError

_TIME = re.compile(
    r"\s*(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:(?:[Tt]|\s+)(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:[.,](\d{1,9}))?)?)?"
    r"\s*(Z|z|[+-]\d{2}:?\d{2})?\s*"
)


def parse_time(text: str) -> datetime:
    """A datetime: naive (device local time) unless the text carries a zone."""
    match = _TIME.fullmatch(text)
    if match is None:
        raise ParseError(f"not a MANSCDP time: {text[:40]!r}")
    year, month, day, hour, minute, second = (int(g) if g else 0 for g in match.groups()[:6])
    fraction = match[7] or ""
    microsecond = int(fraction[:6].ljust(6, "0")) if fraction else 0
    zone = match[8]
    tzinfo: timezone | None = None
    try:
        if zone in ("Z", "z"):
            tzinfo = UTC
        elif zone is not None:
            digits = zone[1:].replace(":", "")
            offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
            tzinfo = timezone(-offset if zone[0] == "-" else offset)
        return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=tzinfo)
    except ValueError as error:
        raise ParseError(f"MANSCDP time {text[:40]!r} is out of range: {error}") from None


def format_time(value: datetime) -> str:
    """The standard's form, seconds precision; an aware value is written as its own wall time."""
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
        f"T{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    )


def parse_time_or_none(text: str | None) -> datetime | None:
    """For optional fields: absent or unreadable is None (the raw text stays in the message)."""
    if text is None:
        return None
    try:
        return parse_time(text)
    except ParseError:
        return None
