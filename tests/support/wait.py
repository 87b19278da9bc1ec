"""Waiting on a condition with a deadline (never a fixed sleep)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.1
) -> T:
    """Call ``check`` until it returns something truthy; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        pause.wait(interval)


async def until(
    check: Callable[[], object], within: float, what: str, interval: float = 0.02
) -> None:
    """``wait_until`` for a test's event loop: the loop keeps running between checks."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    pause = asyncio.Event()  # never set: waiting on it with a timeout yields to the loop
    while not check():
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(pause.wait(), interval)
