"""SIP over UDP and TCP for the platform's GB/T 28181 server (the I/O around the sans-I/O core).

UDP is read with ``loop.add_reader`` and ``recvfrom_into`` on one preallocated buffer: asyncio's
DatagramProtocol allocates a 256 KiB buffer per datagram and lost packets from ~50k/s here, a
keepalive storm of a few thousand devices comes close. TCP connections are framed by
StreamFramer and kept by the peer's address, so that requests to a device that registered over
TCP go back over its own connection (devices behind NAT accept nothing else).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Callable

from xueliang.gb28181.errors import ParseError
from xueliang.gb28181.registrar import Address
from xueliang.gb28181.sip import SipMessage, StreamFramer, parse_message

log = logging.getLogger(__name__)

MAX_DATAGRAM = 65535
PORT_ATTEMPTS = 20  # port 0: tries for a number free for both UDP and TCP
UDP_BUFFER_BYTES = 4 * 1024 * 1024
MAX_TCP_CONNECTIONS = 20000

# (message, where it came from) for each message received; malformed bytes never get here.
Receiver = Callable[[SipMessage, Address], None]


class SipTransport:
    def __init__(self, host: str, port: int, receive: Receiver) -> None:
        self._host = host
        self._want_port = port
        self._receive = receive
        self._udp: socket.socket | None = None
        self._tcp: asyncio.Server | None = None
        self._conns: dict[tuple[str, int], asyncio.StreamWriter] = {}
        self._buffer = bytearray(MAX_DATAGRAM)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.port = port
        self.malformed = 0  # messages that could not be parsed (answered by nobody: dropped)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        # UDP and TCP on one port number (devices are configured with one). With port 0 the
        # number UDP was given may be taken for TCP (a connection's local port): try another.
        attempts = PORT_ATTEMPTS if self._want_port == 0 else 1
        for attempt in range(attempts):
            udp = self._bind_udp()
            port = udp.getsockname()[1]
            try:
                self._tcp = await asyncio.start_server(
                    self._serve_tcp, self._host, port, reuse_address=True, limit=1 << 20
                )
            except OSError as exc:
                udp.close()
                if exc.errno != errno.EADDRINUSE or attempt == attempts - 1:
                    raise
                continue
            self.port = port
            self._udp = udp
            self._loop.add_reader(udp.fileno(), self._read_udp)
            return

    def _bind_udp(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        udp = socket.socket(family, socket.SOCK_DGRAM)
        try:
            udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with contextlib.suppress(OSError):
                udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_BUFFER_BYTES)
            udp.bind((self._host, self._want_port))
            udp.setblocking(False)
        except BaseException:
            udp.close()
            raise
        return udp

    async def stop(self) -> None:
        if self._udp is not None and self._loop is not None:
            self._loop.remove_reader(self._udp.fileno())
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            for writer in list(self._conns.values()):
                writer.close()
            self._conns.clear()
            with contextlib.suppress(Exception):
                await self._tcp.wait_closed()
            self._tcp = None

    # --- receiving ---------------------------------------------------------------------------

    def _read_udp(self) -> None:
        udp = self._udp
        if udp is None:
            return
        # Drain what is queued (bounded: other work gets its turn).
        for _ in range(256):
            try:
                n, addr = udp.recvfrom_into(self._buffer)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # ICMP unreachable from an earlier send, and the like
                log.debug("sip udp: %s", exc)
                continue
            data = bytes(self._buffer[:n])
            if not data.strip():
                continue  # CRLF keepalives
            try:
                message = parse_message(data)
            except ParseError as exc:
                self.malformed += 1
                log.info("sip udp from %s:%d: malformed message dropped: %s", addr[0], addr[1], exc)
                continue
            self._deliver(message, Address(addr[0], addr[1], "udp"))

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if not peer or len(self._conns) >= MAX_TCP_CONNECTIONS:
            writer.close()
            return
        key = (str(peer[0]), int(peer[1]))
        self._conns[key] = writer
        framer = StreamFramer()
        try:
            while data := await reader.read(65536):
                try:
                    messages = framer.feed(data)
                except ParseError as exc:
                    self.malformed += 1
                    log.info("sip tcp from %s:%d: %s; closing", key[0], key[1], exc)
                    return
                for message in messages:
                    self._deliver(message, Address(key[0], key[1], "tcp"))
        except (ConnectionError, OSError):
            pass
        finally:
            if self._conns.get(key) is writer:
                del self._conns[key]
            writer.close()

    def _deliver(self, message: SipMessage, source: Address) -> None:
        try:
            self._receive(message, source)
        except ParseError as exc:
            # A header the handler needed was malformed: the message is dropped, others go on.
            self.malformed += 1
            log.info("sip from %s:%d: %s", source.host, source.port, exc)
        except Exception:
            log.exception("sip: handling a message from %s:%d failed", source.host, source.port)

    # --- sending -----------------------------------------------------------------------------

    def send(self, data: bytes, to: Address) -> bool:
        if to.transport == "tcp":
            writer = self._conns.get((to.host, to.port))
            if writer is None or writer.is_closing():
                return False
            writer.write(data)
            return True
        udp = self._udp
        if udp is None:
            return False
        try:
            udp.sendto(data, (to.host, to.port))
        except OSError as exc:
            log.info("sip udp to %s:%d: %s", to.host, to.port, exc)
            return False
        return True

    def connected(self, to: Address) -> bool:
        return to.transport != "tcp" or (to.host, to.port) in self._conns
