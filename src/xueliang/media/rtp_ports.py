"""Media ports for GB/T 28181 sessions: the SIP side takes one per INVITE and gives it back at BYE.

Ports are even, as RTP convention has it (the odd one above is RTCP's), within a configured
range. A port is handed out only if it can be bound right now (UDP and TCP, both used: the
transport is negotiated per session), so one held by another program is skipped rather than
failing the session later; it stays in the pool and is tried again on a later turn.

Released ports go to the back of the queue: the port of a session that just ended is the last
to be reused, so stray packets of the old stream do not land in a new one.
"""

from __future__ import annotations

import socket
import threading
from collections import deque
from collections.abc import Callable

from xueliang.core.errors import Conflict


class PortsExhausted(Conflict):
    """Every port in the range is in use (or cannot be bound)."""


def can_bind(host: str, port: int) -> bool:
    """Whether ``port`` is free on ``host`` for both UDP and TCP right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(family, kind) as sock:
            if kind == socket.SOCK_STREAM:
                # As the TCP passive listener does: a port in TIME_WAIT is free for it.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                return False
    return True


class RtpPortAllocator:
    """Thread-safe allocator of the even ports in ``first``..``last`` (inclusive)."""

    def __init__(
        self,
        first: int,
        last: int,
        *,
        host: str,
        probe: Callable[[str, int], bool] = can_bind,
    ) -> None:
        start = first + (first & 1)
        if not 0 < start <= last <= 65535:
            raise ValueError(f"RTP port range {first}-{last} holds no even port")
        self._host = host
        self._probe = probe
        self._lock = threading.Lock()
        self._free: deque[int] = deque(range(start, last + 1, 2))
        self._used: set[int] = set()
        self.size = len(self._free)

    def allocate(self) -> int:
        """An even port free to bind; ``PortsExhausted`` when there is none."""
        with self._lock:
            # The probe runs under the lock: it is a few system calls, and two callers must
            # not be handed the same port between probe and bookkeeping.
            for _ in range(len(self._free)):
                port = self._free.popleft()
                if self._probe(self._host, port):
                    self._used.add(port)
                    return port
                self._free.append(port)  # busy elsewhere for now: tried again later
        raise PortsExhausted(f"no free RTP port among {self.size} (all in use or taken)")

    def release(self, port: int) -> None:
        """Give ``port`` back. Releasing one that is not allocated is a bug, and says so."""
        with self._lock:
            if port not in self._used:
                raise ValueError(f"RTP port {port} is not allocated")
            self._used.remove(port)
            self._free.append(port)

    @property
    def in_use(self) -> int:
        with self._lock:
            return len(self._used)

    @property
    def available(self) -> int:
        with self._lock:
            return len(self._free)
