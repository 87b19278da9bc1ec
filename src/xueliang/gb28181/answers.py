"""Waiting for a device's answer to a query: the MESSAGE that comes back (after the 200 OK
to ours) with the same CmdType and SN, or the pages of a paged one (RecordInfo), gathered until
SumNum items have come or the device has been quiet for a while (a page lost for good: what
came is the answer, as the interop notes ask for catalogues too)."""

from __future__ import annotations

import asyncio
import dataclasses

from xueliang.gb28181 import manscdp


class PendingAnswer:
    """The answering MESSAGE(s) to one query: one, or the pages of a paged answer."""

    def __init__(self, done: asyncio.Future[manscdp.Message]) -> None:
        self._done = done
        self._pages: list[manscdp.Message] = []
        self._items = 0
        self._last = asyncio.get_running_loop().time()

    def add(self, message: manscdp.Message) -> None:
        self._last = asyncio.get_running_loop().time()
        if self._done.done():
            return
        items = getattr(message, "items", None)
        sum_num = getattr(message, "sum_num", None)
        if items is None or not sum_num:
            self._pages.append(message)
            self._done.set_result(message)
            return
        self._pages.append(message)
        self._items += len(items)
        if self._items >= sum_num:
            self._done.set_result(self._merged())

    def _merged(self) -> manscdp.Message:
        first = self._pages[0]
        if isinstance(first, manscdp.RecordInfo):
            items = tuple(
                i
                for page in self._pages
                if isinstance(page, manscdp.RecordInfo)
                for i in page.items
            )
            return dataclasses.replace(first, items=items, list_num=len(items))
        return first

    async def result(self, page_wait: float) -> manscdp.Message:
        loop = asyncio.get_running_loop()
        while True:
            remaining = self._last + page_wait - loop.time()
            if remaining <= 0:
                if self._pages:  # pages missing for good: what came is the answer
                    return self._merged()
                raise TimeoutError("the device did not answer")
            try:
                return await asyncio.wait_for(asyncio.shield(self._done), remaining)
            except TimeoutError:
                continue
