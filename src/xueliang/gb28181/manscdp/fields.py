"""Low-level field readers shared by the MANSCDP readers.

``_Fields`` reads the children of one element and keeps what no read used as extra; ``_int``,
``_float`` and ``_bool`` read numbers and switches the way devices write them (None, never an
exception, when unreadable); ``_list`` finds a list element and its items.
"""

from __future__ import annotations

import math
from datetime import datetime

from xueliang.gb28181.errors import ParseError
from xueliang.gb28181.manscdp.document import Node
from xueliang.gb28181.manscdp.messages import Extra
from xueliang.gb28181.manscdp.timefmt import parse_time


class _Fields:
    """Reads children of one element and remembers which were used; the rest become extra."""

    def __init__(self, node: Node, consumed: tuple[str, ...] = ()) -> None:
        self.node = node
        self.used: set[str] = {name.lower() for name in consumed}

    def text(self, name: str) -> str | None:
        self.used.add(name.lower())
        return self.node.text_of(name)

    def int(self, name: str) -> int | None:
        value = self.node.text_of(name)
        number = _int(value)
        if number is not None or value is None:
            self.used.add(name.lower())
        return number

    def float(self, name: str) -> float | None:
        value = self.node.text_of(name)
        number = _float(value)
        if number is not None or value is None:
            self.used.add(name.lower())
        return number

    def bool(self, name: str) -> bool | None:
        value = self.node.text_of(name)
        flag = _bool(value)
        if flag is not None or value is None:
            self.used.add(name.lower())
        return flag

    def time(self, name: str) -> datetime | None:
        value = self.node.text_of(name)
        if value is None:
            self.used.add(name.lower())
            return None
        try:
            parsed = parse_time(value)
        except ParseError:
            return None  # left unused: the text stays in extra
        self.used.add(name.lower())
        return parsed

    def child(self, name: str) -> Node | None:
        self.used.add(name.lower())
        return self.node.child(name)

    def extra(self) -> Extra:
        out: Extra = {}
        for child in self.node.children:
            if child.name not in self.used:
                _flatten(child, "", out)
        return out


def _flatten(node: Node, prefix: str, out: Extra) -> None:
    key = f"{prefix}{node.tag}"
    if not node.children:
        out.setdefault(key, node.text)
        return
    for child in node.children:
        _flatten(child, f"{key}/", out)


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    text = value.strip()
    if text[:1] in ("+", "-"):
        sign, digits = text[:1], text[1:]
    else:
        sign, digits = "", text
    if not digits.isascii() or not digits.isdigit() or len(digits) > 18:
        return None
    return int(sign + digits)


_TRUE = frozenset({"1", "TRUE", "ON", "YES"})
_FALSE = frozenset({"0", "FALSE", "OFF", "NO"})


def _bool(value: str | None) -> bool | None:
    """1/0 as the standard writes switches (and the spellings devices use); None otherwise."""
    if value is None:
        return None
    upper = value.strip().upper()
    return True if upper in _TRUE else False if upper in _FALSE else None


def _float(value: str | None) -> float | None:
    if value is None:
        return None
    text = value.strip()
    if not text.isascii() or len(text) > 40:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


_HEADER = ("CmdType", "SN", "DeviceID")


def _list(root: Node, name: str) -> tuple[Node, list[Node]]:
    """The list element (or the root when a device leaves it out) and its items."""
    container = root.child(name) or root
    return container, list(container.children_named("Item"))
