"""The runner's media half: the ports INVITE answers carry, the streams a device's
:class:`StartStream` opens (RTP over UDP, or TCP active or passive), and the one task that paces
them all with the pre-encoded clip.

:class:`MediaStreamsMixin` is a part of :class:`~.runner.SimulatorRunner`, whose state it uses
(declared here, set up there).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

from xueliang.gb28181 import sdp
from xueliang.gb28181.simulator.device import Device
from xueliang.gb28181.simulator.media import Clip, StreamPacer, encode_clip
from xueliang.gb28181.simulator.model import Address, Output, StartStream

if TYPE_CHECKING:
    from xueliang.gb28181.simulator.runner import RunnerSettings, Slot, Stats

# Over this much unsent data a TCP media receiver is too slow: frames are dropped for it.
MAX_TCP_BACKLOG = 2 * 1024 * 1024


@dataclass
class Stream:
    device: Device
    start: StartStream
    pacer: StreamPacer | None = None  # None until the media path is open
    udp_target: Address | None = None
    writer: asyncio.Transport | None = None
    server: asyncio.AbstractServer | None = None


class _MediaConnection(asyncio.Protocol):
    """A TCP media connection: only written to; whatever the platform sends is ignored."""

    def __init__(self, runner: MediaStreamsMixin, stream: Stream) -> None:
        self.runner = runner
        self.stream = stream

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.runner.media_connected(self.stream, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.runner.media_closed(self.stream)


class MediaStreamsMixin:
    """Media streams of the runner's devices: start, pace, close."""

    settings: RunnerSettings
    rtp_port: int
    _clip: Clip | None
    _sub_clip: Clip | None
    _slots: list[Slot]
    _streams: dict[tuple[int, str], Stream]
    _reserved: dict[str, socket.socket]
    _media_wake: asyncio.Event
    _stats_base: Stats
    _rtp: asyncio.DatagramTransport | None
    _tasks: set[asyncio.Task[None]]

    @staticmethod
    def now() -> float:
        raise NotImplementedError

    def _apply(self, slot: Slot, outputs: list[Output]) -> None:
        raise NotImplementedError

    # --- media -------------------------------------------------------------------------------

    def clip(self) -> Clip:
        if self._clip is None:
            s = self.settings
            self._clip = encode_clip(s.width, s.height, fps=s.fps, gop=s.fps)
        return self._clip

    def sub_clip(self) -> Clip:
        """The sub stream (a=streamnumber:1 and up): half the size each way, as cameras'
        sub streams are smaller than their main one."""
        if self._sub_clip is None:
            s = self.settings
            width, height = max(32, s.width // 2 // 2 * 2), max(32, s.height // 2 // 2 * 2)
            self._sub_clip = encode_clip(width, height, fps=s.fps, gop=s.fps)
        return self._sub_clip

    def _allocate_port(
        self, call_id: str, transport: sdp.Transport, setup: sdp.Setup | None
    ) -> int:
        if transport is sdp.Transport.UDP:
            return self.rtp_port
        # TCP: a socket bound now, so the answer carries its real port; passive listens on
        # it, active connects from it.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.settings.bind_host, 0))
        sock.setblocking(False)
        if setup is sdp.Setup.PASSIVE:
            # Listen before answering: the platform may connect as soon as it reads the 200,
            # before its ACK arrives; the kernel queues that connection until the accept.
            sock.listen(1)
        old = self._reserved.pop(call_id, None)
        if old is not None:
            old.close()
        self._reserved[call_id] = sock
        return int(sock.getsockname()[1])

    def _start_stream(self, slot: Slot, start: StartStream) -> None:
        key = (slot.index, start.call_id)
        stream = Stream(slot.device, start)
        self._streams[key] = stream
        if start.transport is sdp.Transport.UDP:
            stream.udp_target = start.remote
            self._begin(stream)
            return
        sock = self._reserved.pop(start.call_id, None)
        if sock is None:
            return
        loop = asyncio.get_running_loop()
        if start.setup is sdp.Setup.PASSIVE:
            task = loop.create_task(
                loop.create_server(lambda: _MediaConnection(self, stream), sock=sock)
            )
            task.add_done_callback(lambda t: self._server_ready(stream, t))
        else:
            connect = loop.create_task(self._connect_media(stream, sock))
            self._tasks.add(connect)
            connect.add_done_callback(self._tasks.discard)

    def _server_ready(self, stream: Stream, task: asyncio.Task[asyncio.Server]) -> None:
        if task.cancelled() or task.exception() is not None:
            return
        stream.server = task.result()

    async def _connect_media(self, stream: Stream, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.sock_connect(sock, stream.start.remote)
            await loop.create_connection(lambda: _MediaConnection(self, stream), sock=sock)
        except OSError:
            sock.close()

    def media_connected(self, stream: Stream, transport: asyncio.Transport) -> None:
        if stream.writer is not None:  # one connection per stream; a second is refused
            transport.close()
            return
        stream.writer = transport
        self._begin(stream)

    def media_closed(self, stream: Stream) -> None:
        """The platform closed a TCP media connection: the stream idles until BYE."""
        stream.writer = None
        self._retire(stream)

    def _retire(self, stream: Stream) -> None:
        """Stop pacing a stream, keeping what it sent in the totals."""
        if stream.pacer is not None:
            self._stats_base.packets += stream.pacer.sent_packets
            self._stats_base.bytes += stream.pacer.sent_bytes
            stream.pacer = None

    def _begin(self, stream: Stream) -> None:
        start = stream.start
        stream.pacer = StreamPacer(
            self.sub_clip() if start.stream_number > 0 else self.clip(),
            ssrc=start.ssrc,
            started=self.now(),
            tcp=start.transport is sdp.Transport.TCP,
            speed=start.speed if start.session_type is sdp.SessionType.DOWNLOAD else 1.0,
            duration=start.duration,
        )
        self._media_wake.set()

    def _close_stream(self, key: tuple[int, str]) -> None:
        stream = self._streams.pop(key, None)
        sock = self._reserved.pop(key[1], None)
        if sock is not None:
            sock.close()
        if stream is None:
            return
        self._retire(stream)
        if stream.writer is not None:
            stream.writer.close()
        if stream.server is not None:
            stream.server.close()

    async def _media(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            now = self.now()
            next_due = now + 1.0
            for key, stream in list(self._streams.items()):
                pacer = stream.pacer
                if pacer is None:
                    continue
                packets = pacer.due(now)
                if packets:
                    self._send_media(stream, packets)
                if pacer.finished:
                    self._retire(stream)
                    slot = self._slots[key[0]]
                    self._apply(slot, slot.device.media_finished(key[1], now))
                    continue
                next_due = min(next_due, pacer.next_due)
            self._media_wake.clear()
            delay = next_due - self.now()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._media_wake.wait(), timeout=delay)

    def _send_media(self, stream: Stream, packets: list[bytes]) -> None:
        if stream.udp_target is not None and self._rtp is not None:
            for packet in packets:
                self._rtp.sendto(packet, stream.udp_target)
        elif stream.writer is not None:
            if stream.writer.get_write_buffer_size() > MAX_TCP_BACKLOG:
                return  # a slow receiver loses frames; it never stalls the others
            stream.writer.write(b"".join(packets))

    # --- reporting ---------------------------------------------------------------------------
