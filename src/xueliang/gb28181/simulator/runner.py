"""The asyncio adapter: one process runs N simulated devices of M channels each.

Over UDP every device shares one signalling socket and media streams share one RTP socket;
datagrams are routed to devices by the 20-digit IDs in them. Over TCP each device keeps its own
signalling connection (the platform sends its requests down the connection that registered);
a 302 moves it: the connection to the front closes and one to the access node carries the new
registration (and, when that one is lost, the device starts again at the front).
First REGISTERs are spread over a ramp (``ramp_rate`` per second) so a thousand devices do not
arrive in the same millisecond. Timers of all devices live in one heap, woken by one task;
media streams are paced by one task replaying the pre-encoded clip (:mod:`.streams`).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from xueliang.gb28181.errors import ParseError
from xueliang.gb28181.simulator.catalog import device_id, make_channels
from xueliang.gb28181.simulator.device import Device
from xueliang.gb28181.simulator.media import Clip
from xueliang.gb28181.simulator.model import (
    Address,
    DeviceConfig,
    Output,
    StartStream,
    StopStream,
    Transmit,
    UploadSnapshots,
)
from xueliang.gb28181.simulator.snapshots import file_id, snapshot_jpeg, upload
from xueliang.gb28181.simulator.streams import MediaStreamsMixin, Stream
from xueliang.gb28181.sip import SipMessage, SipResponse, StreamFramer, parse_message

# How long stopping waits for the servers' answers to the unregistrations.
UNREGISTER_WAIT = 2.0


@dataclass(frozen=True)
class RunnerSettings:
    server: Address
    server_id: str
    domain: str
    password: str
    devices: int = 1
    channels: int = 1
    transport: str = "udp"
    keepalive: float = 30.0
    id_prefix: str = ""  # 10 digits; the domain when empty
    bind_host: str = "0.0.0.0"  # noqa: S104 (a simulator listens where it is told)
    advertise_host: str = ""  # the address in Via, Contact and SDP; guessed when empty
    sip_port: int = 0  # the shared UDP signalling port (0: any)
    ramp_rate: float = 200.0  # first REGISTERs per second
    expires: int = 3600
    width: int = 640
    height: int = 360
    fps: int = 25
    catalog_page_size: int = 20
    retry_base: float = 2.0
    retry_max: float = 60.0
    mobile: bool = False  # devices send MobilePosition when subscribed
    refuse_subscribe: int = 0  # answer SUBSCRIBE with this status (405…); 0: accept


@dataclass
class Stats:
    devices: int = 0
    registered: int = 0
    keepalives: int = 0
    keepalives_ok: int = 0
    invites: int = 0
    streams: int = 0
    packets: int = 0
    bytes: int = 0

    def line(self) -> str:
        return (
            f"registered {self.registered}/{self.devices}  keepalives {self.keepalives_ok}"
            f"/{self.keepalives}  invites {self.invites}  streams {self.streams}"
            f"  rtp {self.packets} pkts {self.bytes / 1e6:.1f} MB"
        )


@dataclass
class Slot:
    device: Device
    index: int
    started: bool = False
    tcp: asyncio.Transport | None = None
    # Where the TCP connection goes: the server, or the access node a 302 named.
    peer: Address | None = None
    framer: StreamFramer = field(default_factory=StreamFramer)


def guess_host(server: Address) -> str:
    """The local address that routes to the server (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(server)
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, runner: SimulatorRunner) -> None:
        self.runner = runner

    def datagram_received(self, data: bytes, addr: tuple[str | bytes, int]) -> None:
        self.runner.on_datagram(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP unreachable from a server not yet up: the transaction timers retry


class _Signalling(asyncio.Protocol):
    def __init__(self, runner: SimulatorRunner, slot: Slot) -> None:
        self.runner = runner
        self.slot = slot
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = self.slot.tcp = transport

    @property
    def current(self) -> bool:
        """Whether this is still the device's connection (not one a redirect left behind)."""
        return self.transport is not None and self.slot.tcp is self.transport

    def data_received(self, data: bytes) -> None:
        if not self.current:
            return
        try:
            messages = self.slot.framer.feed(data)
        except ParseError:
            if self.slot.tcp is not None:
                self.slot.tcp.close()
            return
        for message in messages:
            self.runner.deliver(self.slot, message, self.slot.peer or self.runner.server)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.current:
            self.runner.tcp_lost(self.slot)


class SimulatorRunner(MediaStreamsMixin):
    def __init__(self, settings: RunnerSettings, *, clip: Clip | None = None) -> None:
        self.settings = settings
        self.server = settings.server
        self.tcp = settings.transport.lower() == "tcp"
        self.host = settings.advertise_host or guess_host(settings.server)
        self._clip = clip
        self._sub_clip: Clip | None = None
        self._slots: list[Slot] = []
        self._by_id: dict[str, Slot] = {}
        self._heap: list[tuple[float, int, int]] = []
        self._order = itertools.count()
        self._wake = asyncio.Event()
        self._streams: dict[tuple[int, str], Stream] = {}
        self._reserved: dict[str, socket.socket] = {}
        self._media_wake = asyncio.Event()
        self._connecting: set[int] = set()
        self._unregistering: set[int] = set()
        self._stopping = False
        self._unregistered = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._sip: asyncio.DatagramTransport | None = None
        self._rtp: asyncio.DatagramTransport | None = None
        self.sip_port = 0
        self.rtp_port = 0
        self.stats = Stats(devices=settings.devices)
        self._stats_base = Stats()

    @staticmethod
    def now() -> float:
        return time.time()

    # --- setup -----------------------------------------------------------------------------

    async def open(self) -> None:
        """Bind the shared sockets and build the devices (nothing is sent yet)."""
        loop = asyncio.get_running_loop()
        s = self.settings
        rtp, _ = await loop.create_datagram_endpoint(
            lambda: _Datagrams(self), local_addr=(s.bind_host, 0)
        )
        self._rtp = rtp
        self.rtp_port = int(rtp.get_extra_info("sockname")[1])
        if not self.tcp:
            sip, _ = await loop.create_datagram_endpoint(
                lambda: _Datagrams(self), local_addr=(s.bind_host, s.sip_port)
            )
            self._sip = sip
            self.sip_port = int(sip.get_extra_info("sockname")[1])
        prefix = s.id_prefix or s.domain
        for index in range(s.devices):
            channels = make_channels(prefix, index, s.channels)
            config = DeviceConfig(
                device_id=device_id(prefix, index, nvr=s.channels > 1),
                server_id=s.server_id,
                domain=s.domain,
                password=s.password,
                channels=channels,
                local_host=self.host,
                local_port=self.sip_port,
                media_host=self.host,
                transport="TCP" if self.tcp else "UDP",
                expires=s.expires,
                keepalive_interval=s.keepalive,
                catalog_page_size=s.catalog_page_size,
                retry_base=s.retry_base,
                retry_max=s.retry_max,
                mobile=s.mobile,
                refuse_subscribe=s.refuse_subscribe,
            )
            slot = Slot(Device(config, allocate_port=self._allocate_port), index)
            self._slots.append(slot)
            self._by_id[config.device_id] = slot
            for channel in channels:
                self._by_id.setdefault(channel.channel_id, slot)

    @property
    def devices(self) -> list[Device]:
        return [slot.device for slot in self._slots]

    async def run(self, stop: asyncio.Event) -> None:
        """Start the devices along the ramp and serve until ``stop`` is set."""
        if not self._slots:
            await self.open()
        t0 = self.now()
        rate = max(self.settings.ramp_rate, 0.001)
        for slot in self._slots:
            self._schedule(slot, t0 + slot.index / rate)
        # The timers outlive ``stop``: unregistering needs retransmissions and challenges.
        closed = asyncio.Event()
        tasks = [
            asyncio.create_task(self._timers(closed)),
            asyncio.create_task(self._media(stop)),
        ]
        try:
            await stop.wait()
            await self._unregister_all()
        finally:
            closed.set()
            for task in [*tasks, *self._tasks]:
                task.cancel()
            for task in [*tasks, *self._tasks]:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._close()

    async def _unregister_all(self) -> None:
        self._stopping = True
        now = self.now()
        for slot in self._slots:
            if slot.started:
                self._apply(slot, slot.device.stop(now))
        for key in list(self._streams):
            self._close_stream(key)
        # Give the unregistrations (and their digest challenges) a moment to complete.
        self._unregistering = {s.index for s in self._slots if s.device.unregistering}
        if self._unregistering:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._unregistered.wait(), UNREGISTER_WAIT)

    def _close(self) -> None:
        for slot in self._slots:
            if slot.tcp is not None:
                slot.tcp.close()
        for sock in self._reserved.values():
            sock.close()
        self._reserved.clear()
        for transport in (self._sip, self._rtp):
            if transport is not None:
                transport.close()

    # --- timers ------------------------------------------------------------------------------

    def _schedule(self, slot: Slot, at: float | None) -> None:
        if at is None:
            return
        heapq.heappush(self._heap, (at, next(self._order), slot.index))
        if self._heap[0][0] == at:  # a new earliest deadline: the timer task must know
            self._wake.set()

    async def _timers(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            now = self.now()
            while self._heap and self._heap[0][0] <= now:
                _, _, index = heapq.heappop(self._heap)
                slot = self._slots[index]
                if not slot.started:
                    if not self._stopping:
                        self._start(slot)
                    continue
                deadline = slot.device.next_deadline
                if deadline is not None and deadline <= now:
                    self._apply(slot, slot.device.tick(now))
            self._wake.clear()
            delay = self._heap[0][0] - self.now() if self._heap else 1.0
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=min(delay, 1.0))

    def _start(self, slot: Slot) -> None:
        if self.tcp:
            if slot.index not in self._connecting:
                self._connecting.add(slot.index)
                task = asyncio.get_running_loop().create_task(self._connect(slot))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            return
        slot.started = True
        self._apply(slot, slot.device.start(self.now()))

    async def _connect(self, slot: Slot) -> None:
        try:
            await self._open_signalling(slot)
        finally:
            self._connecting.discard(slot.index)

    async def _open_signalling(self, slot: Slot) -> None:
        if slot.tcp is None:
            try:
                await self._dial(slot, self.server)
            except OSError:
                # No server yet: try again after the device's back-off.
                self._schedule(slot, self.now() + slot.device.retry_delay(2))
                return
        slot.started = True
        self._apply(slot, slot.device.start(self.now()))

    async def _dial(self, slot: Slot, to: Address) -> None:
        """Open the device's signalling connection to ``to``; OSError when it cannot."""
        await asyncio.get_running_loop().create_connection(
            lambda: _Signalling(self, slot), to[0], to[1]
        )
        assert slot.tcp is not None
        slot.peer = to
        host, port = slot.tcp.get_extra_info("sockname")[:2]
        slot.device.local = (self.host if host in ("0.0.0.0", "::") else host, port)  # noqa: S104

    async def _move(self, slot: Slot, to: Address, data: bytes) -> None:
        """A 302 over TCP: close the connection to the front, connect to the access node and
        send it the registration the device addressed to it (or back, after a failed attempt
        at the node). A node that cannot be reached is a lost connection: the device registers
        at the front again after its back-off."""
        old, slot.tcp, slot.peer = slot.tcp, None, to
        slot.framer = StreamFramer()
        if old is not None:
            old.close()  # its connection_lost is no longer the device's (see _Signalling)
        try:
            await self._dial(slot, to)
        except OSError:
            if slot.peer == to and slot.tcp is None:
                self.tcp_lost(slot)
            return
        assert slot.tcp is not None
        slot.tcp.write(data)

    # --- signalling in and out ---------------------------------------------------------------

    def on_datagram(self, data: bytes, addr: Address) -> None:
        if not data.strip(b"\r\n\x00"):
            return  # keepalive padding
        try:
            message = parse_message(data)
            slot = self._route(message)
        except ParseError:
            return
        if slot is not None:
            self.deliver(slot, message, addr)

    def _route(self, message: SipMessage) -> Slot | None:
        """Responses carry the device in From; requests name the device or a channel in
        the Request-URI (or To)."""
        if isinstance(message, SipResponse):
            return self._by_id.get(message.from_.uri.user or "")
        user = message.request_uri.user or message.to.uri.user or ""
        return self._by_id.get(user) or self._by_id.get(message.to.uri.user or "")

    def deliver(self, slot: Slot, message: SipMessage, source: Address) -> None:
        if not slot.started:
            return
        self._apply(slot, slot.device.receive(message, self.now(), source))
        if slot.index in self._unregistering and not slot.device.unregistering:
            self._unregistering.discard(slot.index)
            if not self._unregistering:
                self._unregistered.set()

    def act(self, index: int, action: Callable[[Device, float], list[Output]]) -> None:
        """Make device ``index`` do something (raise an alarm, change its catalogue): call on
        the runner's loop (``loop.call_soon_threadsafe`` from another thread)."""
        slot = self._slots[index]
        if slot.started:
            self._apply(slot, action(slot.device, self.now()))

    def tcp_lost(self, slot: Slot) -> None:
        slot.tcp = None
        slot.peer = None  # the next connection goes to the server, not to a node
        slot.framer = StreamFramer()
        if not slot.started:
            return
        slot.started = False
        outputs = slot.device.connection_lost(self.now())
        self._apply(slot, outputs)
        self._schedule(slot, slot.device.next_deadline)

    def _apply(self, slot: Slot, outputs: list[Output]) -> None:
        for output in outputs:
            if isinstance(output, Transmit):
                if self.tcp:
                    to = output.to or self.server
                    if slot.started and slot.peer is not None and to != slot.peer:
                        # A request for elsewhere: the access node a 302 named, or the server
                        # again after a failed attempt there.
                        task = asyncio.get_running_loop().create_task(
                            self._move(slot, to, output.data)
                        )
                        self._tasks.add(task)
                        task.add_done_callback(self._tasks.discard)
                    elif slot.tcp is not None:
                        slot.tcp.write(output.data)
                elif self._sip is not None:
                    self._sip.sendto(output.data, output.to or self.server)
            elif isinstance(output, StartStream):
                self._start_stream(slot, output)
            elif isinstance(output, StopStream):
                self._close_stream((slot.index, output.call_id))
            elif isinstance(output, UploadSnapshots):
                task = asyncio.get_running_loop().create_task(self._snapshots(slot, output))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        self._schedule(slot, slot.device.next_deadline)

    # --- snapshots (SnapShotConfig) ----------------------------------------------------------

    async def _snapshots(self, slot: Slot, order: UploadSnapshots) -> None:
        """Take and upload the pictures, ``interval`` s apart (the device's pace, as asked),
        then report the uploaded ones with UploadSnapShotFinished."""
        s = self.settings
        uploaded: list[str] = []
        for index in range(1, order.count + 1):
            if index > 1:
                await asyncio.sleep(order.interval)
            at = self.now()
            name = file_id(order.channel_id, at, index)
            jpeg = await asyncio.to_thread(snapshot_jpeg, s.width, s.height, index, at, slot.index)
            status = await asyncio.to_thread(upload, order.url, order.session_id, name, jpeg)
            if 200 <= status < 300:
                uploaded.append(name)
        if slot.started:
            done = slot.device.snapshots_uploaded(
                order.channel_id, order.session_id, uploaded, self.now()
            )
            self._apply(slot, done)

    def snapshot(self) -> Stats:
        stats = Stats(devices=len(self._slots))
        stats.packets = self._stats_base.packets
        stats.bytes = self._stats_base.bytes
        for slot in self._slots:
            device = slot.device
            stats.registered += device.registered
            stats.keepalives += device.counters.keepalives_sent
            stats.keepalives_ok += device.counters.keepalives_ok
            stats.invites += device.counters.invites
        for stream in self._streams.values():
            if stream.pacer is not None:
                stats.streams += 1
                stats.packets += stream.pacer.sent_packets
                stats.bytes += stream.pacer.sent_bytes
        self.stats = stats
        return stats
