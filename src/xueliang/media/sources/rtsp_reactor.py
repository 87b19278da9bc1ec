"""One thread per media worker reads every RTSP connection of the own client.

A thread per channel (as FFmpeg's client needs) means as many threads taking the GIL for each
read as there are channels, and the live server's thread queueing behind them: with Python
parsing every read that contention cost more than the reads (docs/BENCHMARKS.md). Here one
thread waits on all the sockets (``selectors``; a socket is ready once ``LOW_WATER`` bytes
have arrived, ``SO_RCVLOWAT``) and runs each channel's handler in turn; every ``tick`` seconds
it also calls each handler's ``tick`` (the last bytes of a frame below the low-water mark,
keep-alives, silence).

A handler's exception ends its channel only: it is detached and told (``ended``).
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)


class Handler(Protocol):
    sock: socket.socket

    def readable(self, now: float) -> None:
        """The socket has data (or has closed): read it, hand on what it holds."""

    def tick(self, now: float) -> None:
        """Called every tick: read what is below the low-water mark, keep alive, time out."""

    def ended(self, error: BaseException | None) -> None:
        """Detached: by an error of its own (``error``), or on request (None)."""


class RtspReactor(threading.Thread):
    def __init__(self, tick: float) -> None:
        super().__init__(name="rtsp-reader", daemon=True)
        self._tick = tick
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._adding: list[Handler] = []
        self._removing: list[Handler] = []
        self._handlers: set[Handler] = set()
        self._closing = False

    def attach(self, handler: Handler) -> None:
        with self._lock:
            self._adding.append(handler)
        self._wake()

    def detach(self, handler: Handler) -> None:
        """Stop reading for ``handler``; its ``ended(None)`` is called from this thread."""
        with self._lock:
            self._removing.append(handler)
        self._wake()

    def close(self) -> None:
        """End the thread; every handler still attached is told (``ended(None)``)."""
        if not self._closing:
            self._closing = True
            self._wake()
        if self.is_alive():
            self.join(5)

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):  # a wake-up is pending already
            self._wake_w.send(b"\0")

    def run(self) -> None:
        last_tick = time.monotonic()
        while not self._closing:
            ready = self._sel.select(self._tick)
            now = time.monotonic()
            for key, _mask in ready:
                handler: Handler | None = key.data
                if handler is None:
                    try:
                        while self._wake_r.recv(4096):
                            pass
                    except BlockingIOError:
                        pass
                    continue
                if handler in self._handlers:
                    self._call(handler, handler.readable, now)
            self._apply()
            if now - last_tick >= self._tick:
                last_tick = now
                for handler in list(self._handlers):
                    self._call(handler, handler.tick, now)
        self._apply()
        for handler in list(self._handlers):
            self._end(handler, None)
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()

    def _call(self, handler: Handler, method: Callable[[float], None], now: float) -> None:
        try:
            method(now)
        except Exception as exc:  # the handler's channel ends, the others go on
            self._end(handler, exc)

    def _apply(self) -> None:
        with self._lock:
            adding, self._adding = self._adding, []
            removing, self._removing = self._removing, []
        for handler in adding:
            try:
                self._sel.register(handler.sock, selectors.EVENT_READ, handler)
            except (OSError, ValueError) as exc:
                handler.ended(exc)
                continue
            self._handlers.add(handler)
        for handler in removing:
            if handler in self._handlers:
                self._end(handler, None)
            else:
                handler.ended(None)

    def _end(self, handler: Handler, error: BaseException | None) -> None:
        self._handlers.discard(handler)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._sel.unregister(handler.sock)
        handler.ended(error)


_reactor: RtspReactor | None = None
_reactor_lock = threading.Lock()


def reactor(tick: float) -> RtspReactor:
    """The process's reader thread, started on first use."""
    global _reactor
    with _reactor_lock:
        if _reactor is None or not _reactor.is_alive():
            _reactor = RtspReactor(tick)
            _reactor.start()
        return _reactor
