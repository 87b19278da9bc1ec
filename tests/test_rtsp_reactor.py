"""The media worker's one RTSP reader thread: many sockets, each handler on its own."""

from __future__ import annotations

import socket
import threading

from tests.support.wait import wait_until
from xueliang.media.sources.rtsp_reactor import RtspReactor


class Handler:
    def __init__(self, sock: socket.socket, fail: bool = False) -> None:
        self.sock = sock
        sock.setblocking(False)
        self.fail = fail
        self.got = b""
        self.ticks = 0
        self.error: BaseException | None = None
        self.done = threading.Event()

    def readable(self, now: float) -> None:
        data = self.sock.recv(4096)
        if self.fail:
            raise ValueError(f"bad bytes {data!r}")
        self.got += data

    def tick(self, now: float) -> None:
        self.ticks += 1

    def ended(self, error: BaseException | None) -> None:
        self.error = error
        self.done.set()


def test_a_failing_channel_ends_alone_and_the_others_go_on() -> None:
    reactor = RtspReactor(tick=0.01)
    reactor.start()
    pairs = [socket.socketpair() for _ in range(3)]
    good, bad, other = (
        Handler(pairs[0][0]),
        Handler(pairs[1][0], fail=True),
        Handler(pairs[2][0]),
    )
    try:
        for h in (good, bad, other):
            reactor.attach(h)
        pairs[1][1].send(b"garbage")
        wait_until(bad.done.is_set, 5, "the failing handler to be ended")
        assert isinstance(bad.error, ValueError) and "garbage" in str(bad.error)
        for i in range(5):
            pairs[0][1].send(b"%d" % i)
        pairs[2][1].send(b"x")
        wait_until(lambda: good.got == b"01234" and other.got == b"x", 5, "the others' bytes")
        wait_until(lambda: good.ticks >= 3, 5, "ticks")  # every 10 ms
        assert bad.ticks <= good.ticks
        # Detached on request: told with no error, and read no more.
        reactor.detach(good)
        wait_until(good.done.is_set, 5, "detached")
        assert good.error is None
        ticks = good.ticks
        pairs[0][1].send(b"late")
        pairs[2][1].send(b"y")
        wait_until(lambda: other.got == b"xy", 5, "the other still read")
        assert good.got == b"01234" and good.ticks == ticks
        reactor.close()
        assert not reactor.is_alive() and other.done.is_set() and other.error is None
    finally:
        reactor.close()
        for a, b in pairs:
            a.close()
            b.close()
