"""Small asyncio helpers shared by the services."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def on_loop(loop: asyncio.AbstractEventLoop | None, work: Coroutine[Any, Any, T]) -> T:
    """Await ``work`` on ``loop``: the loop a protocol server runs on, whose futures are only
    woken there. A caller on another loop (a second ASGI server in one process, a test client)
    would otherwise wait on a future that is set but never wakes it. None or the caller's own
    loop: awaited here."""
    if loop is None or loop is asyncio.get_running_loop():
        return await work
    done: T = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, loop))
    return done
