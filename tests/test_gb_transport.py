"""The SIP transport's one port for UDP and TCP: with port 0, a number that UDP got but TCP
cannot have (another socket holds it for TCP) is given up for another, instead of failing."""

from __future__ import annotations

import asyncio
import socket

from xueliang.gb28181.transport import SipTransport


def test_port_zero_retries_when_tcp_is_taken_on_the_udp_port() -> None:
    async def main() -> tuple[int, int]:
        # A TCP listener on some port P, and a UDP socket on the same P, handed to the
        # transport as its first UDP bind (as the kernel might choose it).
        blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        clash = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        clash.bind(("127.0.0.1", taken))
        transport = SipTransport("127.0.0.1", 0, lambda message, source: None)
        binds = iter([clash])
        real = transport._bind_udp
        transport._bind_udp = lambda: next(binds, None) or real()  # type: ignore[method-assign]
        try:
            await transport.start()
            port = transport.port
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            probe.connect(("127.0.0.1", port))  # TCP really listens on the port it reports
            probe.close()
        finally:
            await transport.stop()
            blocker.close()
        return taken, port

    taken, port = asyncio.run(asyncio.wait_for(main(), 10))
    assert port != taken and port > 0
