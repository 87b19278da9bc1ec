"""The simulated device's settings, what it asks its runner to do, and its state records.

:class:`DeviceConfig` is what a device is built from; :class:`Transmit`, :class:`StartStream`,
:class:`StopStream` and :class:`UploadSnapshots` are the outputs the sans-I/O
:class:`~xueliang.gb28181.simulator.device.Device` returns; :class:`Registration`,
:class:`Dialog` and :class:`Subscription` are the records it keeps between calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from xueliang.gb28181 import sdp
from xueliang.gb28181.simulator.catalog import Channel
from xueliang.gb28181.sip import NameAddr, SipRequest, new_call_id, new_tag

MANSCDP = "Application/MANSCDP+xml"
USER_AGENT = "Xueliang-Simulator"
MAX_PTZ_KEPT = 1000
Address = tuple[str, int]


@dataclass(frozen=True)
class DeviceConfig:
    device_id: str
    server_id: str
    domain: str  # the SIP domain (10 digits), also the realm the server is expected to use
    password: str
    channels: tuple[Channel, ...]
    local_host: str = "127.0.0.1"  # what goes into Via and Contact
    local_port: int = 5060
    media_host: str = "127.0.0.1"  # the address in SDP answers
    transport: str = "UDP"  # UDP or TCP (the signalling)
    expires: int = 3600
    keepalive_interval: float = 30.0
    keepalive_max_failures: int = 3
    catalog_page_size: int = 20
    record_page_size: int = 10
    retry_base: float = 2.0  # first back-off after a failed REGISTER
    retry_max: float = 60.0
    gb_version: str = "3.0"  # X-GB-Ver: 2.0 for a 2016 device, 3.0 for 2022
    manufacturer: str = "Xueliang"
    model: str = "SIM-1"
    firmware: str = "V1.0.0"
    civil_code: str = ""
    # Devices keep local wall time; GB platforms expect Beijing time (UTC+8) in DeviceTime.
    utc_offset_hours: float = 8.0
    mobile: bool = False  # sends MobilePosition notifies when subscribed (body/vehicle camera)
    refuse_subscribe: int = 0  # a status (405, 489…) to answer every SUBSCRIBE with; 0: accept
    max_subscribe_expires: int = 3600

    @property
    def is_nvr(self) -> bool:
        return len(self.channels) > 1 or self.device_id[10:13] == "118"

    @property
    def reliable(self) -> bool:
        return self.transport.upper() == "TCP"


@dataclass(frozen=True)
class Transmit:
    """Send ``data`` on the signalling transport: to the server when ``to`` is None, else to
    ``to`` (a response over UDP: back to where the request came from; a request after a 302:
    the access node it named)."""

    data: bytes
    to: Address | None = None


@dataclass(frozen=True)
class StartStream:
    call_id: str
    channel_id: str
    session_type: sdp.SessionType
    ssrc: int
    transport: sdp.Transport
    # The device's TCP role: ACTIVE connects to ``remote``, PASSIVE listens on ``local_port``.
    setup: sdp.Setup | None
    remote: Address
    local_port: int
    start: int = 0  # Unix seconds of the recording asked for (Playback, Download)
    stop: int = 0
    speed: float = 1.0  # Download: a=downloadspeed
    stream_number: int = 0  # 2022 a=streamnumber: 0 main stream, 1 sub stream (smaller)

    @property
    def duration(self) -> float | None:
        """Seconds of media to send before MediaStatus 121; None for live."""
        if self.session_type is sdp.SessionType.PLAY or self.stop <= self.start:
            return None
        return float(self.stop - self.start)


@dataclass(frozen=True)
class StopStream:
    call_id: str


@dataclass(frozen=True)
class UploadSnapshots:
    """Take ``count`` pictures of ``channel_id`` ``interval`` s apart and upload them to
    ``url`` (a SnapShotConfig); then tell the device with :meth:`Device.snapshots_uploaded`."""

    channel_id: str
    session_id: str
    url: str
    count: int
    interval: float


Output = Transmit | StartStream | StopStream | UploadSnapshots
# Picks the media port an answer carries: (call id, transport, device's TCP role) -> port.
PortAllocator = Callable[[str, sdp.Transport, sdp.Setup | None], int]


@dataclass
class Dialog:
    invite: SipRequest
    to_tag: str
    start: StartStream
    acked: bool = False
    cseq: int = 0


@dataclass
class Subscription:
    """A subscription the platform holds at this device (the device is the notifier)."""

    topic: str  # Catalog, Alarm, MobilePosition
    call_id: str
    local: NameAddr  # our From in NOTIFYs (the To of the 200, with our tag)
    remote: NameAddr  # the platform's From, with its tag
    target: str  # the platform's Contact: the Request-URI of NOTIFYs
    event: str
    expires_at: float
    interval: float = 5.0
    next_at: float | None = None  # next MobilePosition
    cseq: int = 0
    step: int = 0


@dataclass
class Counters:
    registrations: int = 0
    register_failures: int = 0
    keepalives_sent: int = 0
    keepalives_ok: int = 0
    invites: int = 0
    messages_in: int = 0
    subscribes: int = 0
    notifies_sent: int = 0


@dataclass
class Registration:
    call_id: str = field(default_factory=new_call_id)
    from_tag: str = field(default_factory=new_tag)
    cseq: int = 0
    challenged: tuple[str, ...] = ()  # nonces answered in this attempt
    expires: int = 0  # what the server granted
    unregistering: bool = False
    # Where this registration's requests go: the access node a 302 named; None: the server
    # configured. A lost registration starts again there (and is redirected anew).
    server: Address | None = None
