"""Gathering a catalogue that arrives over many MESSAGEs (pure state, no clock).

Devices split a catalogue into pages that share the query's SN; SumNum may not match the items
and some pages never arrive. The caller owns the timeout: when it fires it takes ``items`` as a
partial catalogue, which adds and updates channels but must never delete any.
"""

from __future__ import annotations

from xueliang.gb28181.manscdp.messages import Catalog, CatalogItem


class CatalogAssembly:
    def __init__(self, device_id: str, sn: int) -> None:
        self.device_id = device_id
        self.sn = sn
        self.expected: int | None = None
        self.pages = 0
        self._items: dict[str, CatalogItem] = {}

    def accepts(self, page: Catalog) -> bool:
        return page.sn == self.sn and page.device_id == self.device_id

    def add(self, page: Catalog) -> bool:
        """Take one page; True once SumNum distinct items are in. A repeated item replaces the
        earlier one (devices resend pages)."""
        if not self.accepts(page):
            raise ValueError(f"page SN {page.sn} of {page.device_id} is not this catalogue")
        self.pages += 1
        if page.sum_num is not None:
            self.expected = max(self.expected or 0, page.sum_num)
        for item in page.items:
            self._items[item.device_id] = item
        return self.complete

    @property
    def complete(self) -> bool:
        return self.expected is not None and len(self._items) >= self.expected

    @property
    def items(self) -> tuple[CatalogItem, ...]:
        return tuple(self._items.values())
