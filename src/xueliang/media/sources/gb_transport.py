"""Sockets that bring a GB/T 28181 device's RTP in: UDP, TCP passive (the device connects to us)
and TCP active (we connect to the device), all read the same way.

Each receiver is a non-blocking socket read with ``recv_into`` into one preallocated buffer
until the kernel has nothing more, then a ``poll`` with a short timeout: one system call per
datagram while packets flow, none spinning while they do not, and no thread per packet. The
caller (``gb_rtp``) owns the clock: ``read`` answers what arrived, possibly nothing, and the
caller decides when silence means the device is gone.
"""

from __future__ import annotations

import contextlib
import errno
import select
import socket
from typing import Protocol

from xueliang.gb28181.rtp import Rfc4571Decoder

# Kernel receive buffer asked for: a few hundred ms of a 4K camera, so a busy ingest thread
# (a key frame going into the recorder) does not lose datagrams. Linux caps it at
# net.core.rmem_max unless raised there.
RECEIVE_BUFFER = 4 << 20
# The largest UDP datagram; TCP reads use the same buffer.
MAX_DATAGRAM = 65536
# Datagrams read in one go before control goes back to the caller (which then checks its stop
# flag and clock); a burst beyond this is read on the next call.
MAX_BATCH = 256


class GbMediaError(Exception):
    """The stream cannot be received: why, in words for the channel's offline reason."""


class RtpInput(Protocol):
    def read(self, timeout: float) -> list[bytes]:
        """RTP packets that arrived, waiting up to ``timeout`` seconds for the first one; an
        empty list when none did. Raises ``GbMediaError`` when the stream is gone for good."""

    def silence(self, seconds: float) -> str:
        """The offline reason when nothing came for ``seconds``."""

    def close(self) -> None: ...


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _no_rtp(seconds: float) -> str:
    return f"no RTP from the device for {seconds:g} s"


def _big_buffer(sock: socket.socket) -> None:
    # Not fatal when refused: the default buffer only loses more on bursts.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)


def _wait_readable(sock: socket.socket, timeout: float) -> bool:
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(max(0, int(timeout * 1000))))


class UdpInput:
    """RTP datagrams arriving on ``host:port``, from whoever sends them (the SSRC check and
    the reorder buffer downstream decide what belongs to the stream)."""

    def __init__(self, host: str, port: int) -> None:
        self.address = _address(host, port)
        sock = socket.socket(_family(host), socket.SOCK_DGRAM)
        try:
            _big_buffer(sock)
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise GbMediaError(f"cannot receive RTP on {self.address}: {exc.strerror}") from exc
        sock.setblocking(False)
        self.address = _address(host, sock.getsockname()[1])  # the port given when 0 was asked
        self._sock = sock
        self._buffer = bytearray(MAX_DATAGRAM)
        self._view = memoryview(self._buffer)

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def read(self, timeout: float) -> list[bytes]:
        out = self._drain()
        if out or not _wait_readable(self._sock, timeout):
            return out
        return self._drain()

    def silence(self, seconds: float) -> str:
        return _no_rtp(seconds)

    def _drain(self) -> list[bytes]:
        out: list[bytes] = []
        recv_into, view = self._sock.recv_into, self._view
        for _ in range(MAX_BATCH):
            try:
                n = recv_into(view)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                # An ICMP error queued by an earlier send (none here) or a transient fault:
                # reading on is the right answer to both.
                if exc.errno in (errno.ECONNREFUSED, errno.ENOBUFS):
                    continue
                raise GbMediaError(f"receiving RTP on {self.address}: {exc.strerror}") from exc
            out.append(bytes(view[:n]))
        return out

    def close(self) -> None:
        self._sock.close()


class _TcpStream:
    """RTP over one TCP connection, RFC 4571 framed (a 2-byte length before each packet)."""

    def __init__(self, sock: socket.socket, peer: str) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._peer = peer
        self._decoder = Rfc4571Decoder()
        self._buffer = bytearray(MAX_DATAGRAM)
        self._view = memoryview(self._buffer)

    def read(self, timeout: float) -> list[bytes]:
        out = self._drain()
        if out or not _wait_readable(self._sock, timeout):
            return out
        return self._drain()

    def _drain(self) -> list[bytes]:
        out: list[bytes] = []
        for _ in range(MAX_BATCH):
            try:
                n = self._sock.recv_into(self._view)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                raise GbMediaError(
                    f"the TCP connection from the device ({self._peer}) failed: {exc.strerror}"
                ) from exc
            if n == 0:
                if out:  # hand over what came before the end; the next read reports it
                    break
                raise GbMediaError("the device closed the TCP connection")
            out += self._decoder.feed(bytes(self._view[:n]))
        return out

    def close(self) -> None:
        self._sock.close()


class TcpPassiveInput:
    """Listens on ``host:port`` and takes the device's connection (the SDP said
    ``a=setup:passive`` for us): one connection per session; a second one is refused."""

    def __init__(self, host: str, port: int) -> None:
        self.address = _address(host, port)
        listener = socket.socket(_family(host), socket.SOCK_STREAM)
        try:
            # A session restarted on the same port must not wait out the old one's TIME_WAIT.
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            _big_buffer(listener)  # inherited by the accepted connection
            listener.bind((host, port))
            listener.listen(1)
        except OSError as exc:
            listener.close()
            raise GbMediaError(f"cannot listen for RTP on {self.address}: {exc.strerror}") from exc
        listener.setblocking(False)
        self.address = _address(host, listener.getsockname()[1])
        self._listener: socket.socket | None = listener
        self._stream: _TcpStream | None = None

    @property
    def port(self) -> int:
        sock = self._listener
        return int(sock.getsockname()[1]) if sock is not None else 0

    def read(self, timeout: float) -> list[bytes]:
        if self._stream is not None:
            return self._stream.read(timeout)
        listener = self._listener
        assert listener is not None
        if not _wait_readable(listener, timeout):
            return []
        try:
            conn, peer = listener.accept()
        except (BlockingIOError, InterruptedError):
            return []
        except OSError as exc:
            raise GbMediaError(f"accepting on {self.address}: {exc.strerror}") from exc
        listener.close()
        self._listener = None
        self._stream = _TcpStream(conn, _address(peer[0], peer[1]))
        return self._stream.read(0)

    def silence(self, seconds: float) -> str:
        if self._stream is None:
            return f"the device did not connect to {self.address} within {seconds:g} s"
        return _no_rtp(seconds)

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        if self._stream is not None:
            self._stream.close()


class TcpActiveInput:
    """Connects to the device at ``peer`` (the SDP said ``a=setup:active`` for us) and reads
    the RTP it sends down that connection."""

    def __init__(self, peer_host: str, peer_port: int, connect_timeout: float) -> None:
        where = _address(peer_host, peer_port)
        sock = socket.socket(_family(peer_host), socket.SOCK_STREAM)
        _big_buffer(sock)  # before connect, so the window scale allows it
        sock.settimeout(connect_timeout)
        try:
            sock.connect((peer_host, peer_port))
        except OSError as exc:
            sock.close()
            why = "timed out" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
            raise GbMediaError(f"could not connect to the device at {where}: {why}") from exc
        self._stream = _TcpStream(sock, where)

    def read(self, timeout: float) -> list[bytes]:
        return self._stream.read(timeout)

    def silence(self, seconds: float) -> str:
        return _no_rtp(seconds)

    def close(self) -> None:
        self._stream.close()
