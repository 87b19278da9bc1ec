"""One simulated GB/T 28181 device (IPC or NVR) as a sans-I/O state machine.

The caller passes the time (Unix seconds) and the messages that arrive; the device returns what
to do: :class:`Transmit` these bytes, :class:`StartStream` / :class:`StopStream` media. Between
calls ``next_deadline`` says when to call :meth:`Device.tick`. No sockets, no clock: the
asyncio runner and the tests drive it the same way.

What it does, as field devices do:
- REGISTER with digest auth (401 -> Authorization), refresh before expiry, retry with
  exponential back-off after a 4xx, a timeout or a lost registration; a 302 is followed to
  the access node its Contact names (the front of a cluster);
- a Keepalive MESSAGE every ``keepalive_interval`` seconds once registered; three unanswered in a
  row (or a 4xx: the server forgot the device) mean registering again;
- answer Catalog (paged), DeviceInfo, DeviceStatus, RecordInfo (synthetic, paged) queries and
  DeviceControl (PTZCmd decoded and kept; the others kept and answered ``control_result``);
- keep a preset table per channel from the PTZCmds (set adds, delete removes) and answer
  PresetQuery from it (a PresetList; ``<Result>ERROR</Result>`` for an ID it does not have);
- answer INVITE (Play, Playback, Download) with an SDP answer and stream after the ACK until BYE;
  a Playback or Download that reached its end sends MediaStatus 121;
- accept Catalog, Alarm and MobilePosition subscriptions (200 with a To tag, Contact and the
  granted Expires; refreshes inside the dialog; ``refuse_subscribe`` plays a device that
  answers 405 and the like) and NOTIFY in them: ``raise_alarm``, ``add_channel`` /
  ``remove_channel`` / ``channel_status`` (catalogue changes: ADD, DEL, ON/OFF/VLOST/DEFECT),
  and, for a ``mobile`` device, a MobilePosition every
  interval along a small synthetic track. Without a subscription an alarm or a catalogue change
  goes out as a MESSAGE, as devices also do;
- answer DeviceConfig (2022): the modelled blocks and the standard's other configuration types
  are kept and answered OK (``config_result`` overrides), anything else ERROR; ConfigDownload
  answers what was set (BasicParam from the device's own settings otherwise); a SnapShotConfig
  also asks the runner to :class:`UploadSnapshots`, after which the device sends
  UploadSnapShotFinished.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from xueliang.gb28181 import manscdp, sdp
from xueliang.gb28181.errors import ParseError
from xueliang.gb28181.manscdp.configs import STANDARD_TYPES
from xueliang.gb28181.manscdp.document import Element, serialise
from xueliang.gb28181.ptz import DecodedPtz, PresetOp, PtzCommand
from xueliang.gb28181.ptz import Preset as PtzPreset
from xueliang.gb28181.ptz import decode as decode_ptz
from xueliang.gb28181.simulator.catalog import Channel, catalog_items, record_items
from xueliang.gb28181.sip import (
    ClientTransaction,
    DigestChallenge,
    NameAddr,
    SipMessage,
    SipRequest,
    SipResponse,
    SipUri,
    TransactionTable,
    Via,
    authorize,
    make_request,
    make_response,
    new_branch,
    new_call_id,
    new_tag,
    parse_message,
)
from xueliang.gb28181.sip.transaction import Deliver, Send, ServerTransaction, Terminated, Timeout

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
class _Dialog:
    invite: SipRequest
    to_tag: str
    start: StartStream
    acked: bool = False
    cseq: int = 0


@dataclass
class _Subscription:
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
class _Registration:
    call_id: str = field(default_factory=new_call_id)
    from_tag: str = field(default_factory=new_tag)
    cseq: int = 0
    challenged: tuple[str, ...] = ()  # nonces answered in this attempt
    expires: int = 0  # what the server granted
    unregistering: bool = False
    # Where this registration's requests go: the access node a 302 named; None: the server
    # configured. A lost registration starts again there (and is redirected anew).
    server: Address | None = None


class Device:
    def __init__(
        self,
        config: DeviceConfig,
        *,
        allocate_port: PortAllocator | None = None,
        seed: int | None = None,
    ) -> None:
        self.config = config
        # Without an allocator (tests) every stream is answered with one fixed port.
        self._allocate_port: PortAllocator = allocate_port or (lambda _c, _t, _s: 9000)
        # Where Via and Contact point; a TCP runner sets it to the connection's own address.
        self.local: Address = (config.local_host, config.local_port)
        # Jitter only, not security: seeded per device so a run is reproducible.
        self._rng = random.Random(seed if seed is not None else config.device_id)  # noqa: S311
        self._table = TransactionTable()
        self._purpose: dict[ClientTransaction, str] = {}
        self._reply_to: dict[ServerTransaction, Address | None] = {}
        self._reg = _Registration()
        self._register_at: float | None = None
        self._keepalive_at: float | None = None
        self._keepalive_failures = 0
        self._failures = 0  # consecutive failed registration attempts, for the back-off
        self._sn = 0
        self.registered = False
        self.dialogs: dict[str, _Dialog] = {}
        # (channel ID, command), the latest ones: a long run must not grow without end.
        self.ptz_commands: deque[tuple[str, DecodedPtz]] = deque(maxlen=MAX_PTZ_KEPT)
        # The presets saved by those commands: channel ID -> preset number -> name.
        self.presets: dict[str, dict[int, str]] = {}
        # Other DeviceControls (TeleBoot, GuardCmd, RecordCmd, …), the latest ones, and what
        # they are answered: "ERROR" plays a device refusing them inside a 200, as Hikvision's do.
        self.controls: deque[manscdp.DeviceControl] = deque(maxlen=MAX_PTZ_KEPT)
        self.control_result = "OK"
        # DeviceConfigs received, the blocks they set (by target ID and element name), what
        # they are answered (None: OK for known types, ERROR otherwise), and the snapshot
        # sessions reported as finished (session ID, file IDs).
        self.device_configs: deque[manscdp.DeviceConfig] = deque(maxlen=MAX_PTZ_KEPT)
        self.stored_configs: dict[tuple[str, str], manscdp.ConfigBlock] = {}
        self.config_result: str | None = None
        self.take_snapshots = True  # False: answers SnapShotConfig OK and uploads nothing
        self.snapshot_reports: deque[tuple[str, tuple[str, ...]]] = deque(maxlen=MAX_PTZ_KEPT)
        self._deferred: list[Output] = []
        self.counters = Counters()
        self._channels = {ch.channel_id: ch for ch in config.channels}
        self.subscriptions: dict[str, _Subscription] = {}  # by Call-ID
        # The platform's answers to this device's alarms (Response, CmdType Alarm).
        self.alarm_answers: list[manscdp.Result] = []
        self._server_uri = f"sip:{config.server_id}@{config.domain}"

    # --- driving -----------------------------------------------------------------------

    def start(self, now: float) -> list[Output]:
        """Register now (the runner spreads the start times of many devices)."""
        self._register_at = now
        return self.tick(now)

    def stop(self, now: float) -> list[Output]:
        """Unregister (Expires: 0) and end every stream."""
        outputs: list[Output] = [StopStream(call_id) for call_id in self.dialogs]
        self.dialogs.clear()
        self.subscriptions.clear()
        self._keepalive_at = None
        self._register_at = None
        if self.registered:
            self._reg.unregistering = True
            self._reg.challenged = ()
            outputs += self._send_register(now, None)
        self.registered = False
        return outputs

    def restart(self, now: float) -> list[Output]:
        """Reboot, as a device does after TeleBoot or a power cut: every stream and
        subscription is gone, and it registers at once under a new Call-ID (its earlier
        registration still live on the platform)."""
        outputs: list[Output] = [StopStream(call_id) for call_id in self.dialogs]
        self.dialogs.clear()
        self.subscriptions.clear()
        self._table = TransactionTable()
        self._purpose.clear()
        self._reply_to.clear()
        self._reg = _Registration()
        self.registered = False
        self._keepalive_at = None
        self._register_at = now
        return outputs + self.tick(now)

    def connection_lost(self, now: float) -> list[Output]:
        """The TCP signalling connection closed: streams end, register again after back-off."""
        outputs: list[Output] = [StopStream(call_id) for call_id in self.dialogs]
        self.dialogs.clear()
        self.subscriptions.clear()
        self._table = TransactionTable()
        self._purpose.clear()
        self._reply_to.clear()
        self._lost_registration(now)
        return outputs

    @property
    def next_deadline(self) -> float | None:
        times = (
            self._register_at,
            self._keepalive_at,
            self._table.next_deadline,
            *(sub.next_at for sub in self.subscriptions.values()),
        )
        present = [t for t in times if t is not None]
        return min(present) if present else None

    @property
    def unregistering(self) -> bool:
        """An unregistration (Expires: 0) is still waiting for its answer."""
        return self._reg.unregistering

    @property
    def next_register(self) -> float | None:
        """When the next REGISTER (refresh or retry) goes out."""
        return self._register_at

    def tick(self, now: float) -> list[Output]:
        outputs: list[Output] = []
        for transaction, action in self._table.tick(now):
            outputs += self._transaction_action(transaction, action, now)
        if self._register_at is not None and self._register_at <= now:
            self._register_at = None
            self._reg.challenged = ()
            outputs += self._send_register(now, None)
        if self._keepalive_at is not None and self._keepalive_at <= now:
            self._keepalive_at = now + self.config.keepalive_interval
            outputs += self._send_keepalive(now)
        for sub in list(self.subscriptions.values()):
            if sub.expires_at <= now:
                del self.subscriptions[sub.call_id]  # never refreshed: the platform is gone
            elif sub.next_at is not None and sub.next_at <= now:
                sub.next_at = now + sub.interval
                outputs += self._send_positions(sub, now)
        return outputs

    def receive(
        self, message: SipMessage | bytes, now: float, source: Address | None = None
    ) -> list[Output]:
        """A message from the network; ``source`` is where it came from (responses to a
        request go back there, as through a NAT)."""
        if isinstance(message, bytes):
            try:
                message = parse_message(message)
            except ParseError:
                return []
        try:
            if isinstance(message, SipResponse):
                return self._on_response(message, now)
            return self._on_request(message, now, source)
        except ParseError:
            return []  # a malformed message from the peer: drop it, as a device would

    def media_finished(self, call_id: str, now: float) -> list[Output]:
        """A Playback or Download sent all it had: MediaStatus 121, the platform then BYEs."""
        dialog = self.dialogs.get(call_id)
        if dialog is None:
            return []
        status = manscdp.MediaStatus(device_id=dialog.start.channel_id, sn=self._next_sn())
        # Sent outside the dialog, as devices do (the platform matches it by the channel).
        return self._send_message(now, manscdp.to_xml(status), "message")

    # --- registration --------------------------------------------------------------------

    def _send_register(self, now: float, challenge: DigestChallenge | None) -> list[Output]:
        cfg = self.config
        reg = self._reg
        reg.cseq += 1
        me = NameAddr(SipUri(host=cfg.domain, user=cfg.device_id))
        expires = 0 if reg.unregistering else cfg.expires
        headers = [("User-Agent", USER_AGENT), ("Expires", str(expires))]
        if cfg.gb_version != "2.0":
            headers.append(("X-GB-Ver", cfg.gb_version))
        if challenge is not None:
            creds = authorize(
                challenge,
                username=cfg.device_id,
                password=cfg.password,
                method="REGISTER",
                uri=self._server_uri,
            )
            headers.append(("Authorization", creds.to_header()))
        request = make_request(
            "REGISTER",
            self._server_uri,
            via=self._via(),
            from_=me.with_tag(reg.from_tag),
            to=me,
            call_id=reg.call_id,
            cseq=reg.cseq,
            contact=self._contact(),
            headers=headers,
        )
        return self._start_client(request, "register", now)

    def _on_register_response(self, response: SipResponse, now: float) -> list[Output]:
        reg = self._reg
        if response.status < 200:
            return []
        if response.status in (401, 407):
            challenge = _challenge_in(response)
            # The same nonce challenged again (not stale) means a wrong password: give up and
            # back off instead of hammering the server with the same digest.
            if (
                challenge is not None
                and (challenge.nonce not in reg.challenged or challenge.stale)
                and len(reg.challenged) < 3
            ):
                reg.challenged = (*reg.challenged, challenge.nonce)
                return self._send_register(now, challenge)
        if reg.unregistering:
            reg.unregistering = False
            return []
        if 300 <= response.status < 400:
            return self._follow_redirect(response, now)
        if not response.success:
            return self._register_failed(now)
        self._failures = 0
        self.counters.registrations += 1
        granted = response.registration_expires or response.expires or self.config.expires
        reg.expires = granted
        # Refresh well before expiry: at 80 %, or a few seconds early for short lifetimes.
        self._register_at = now + max(1.0, min(granted * 0.8, granted - 5.0))
        if not self.registered:
            self.registered = True
            self._keepalive_failures = 0
            self._keepalive_at = now + self.config.keepalive_interval
        return []

    def _follow_redirect(self, response: SipResponse, now: float) -> list[Output]:
        """A 3xx (the front of a cluster sending the fleet to its access nodes): register at
        the first Contact's host and port instead (5060 when it names none), as a new
        registration there: new Call-ID, challenged anew, and keepalives and notifies follow
        it. One hop: a redirect from where a redirect led, or one without a usable Contact,
        fails the attempt, and after the back-off it starts again at the configured server.
        (The runner sends to the node over UDP; over TCP it keeps the connection it has.)"""
        node: Address | None = None
        with contextlib.suppress(ParseError, IndexError):
            uri = response.contacts[0].uri
            node = (uri.host.strip("[]"), uri.port or 5060)
        if node is None or self._reg.server is not None:
            return self._register_failed(now)
        self._reg = _Registration(server=node)
        return self._send_register(now, None)

    def _register_failed(self, now: float) -> list[Output]:
        self.counters.register_failures += 1
        self._lost_registration(now)
        return []

    def _lost_registration(self, now: float) -> None:
        self.registered = False
        self._keepalive_at = None
        self._failures += 1
        self._reg = _Registration()
        self._register_at = now + self.retry_delay(self._failures)

    def retry_delay(self, failures: int) -> float:
        """Exponential back-off with +-10 % jitter, so a server restart is not answered by
        every device in the same second."""
        base = min(self.config.retry_max, self.config.retry_base * 2 ** max(0, failures - 1))
        return float(base * (0.9 + 0.2 * self._rng.random()))

    # --- keepalive and MESSAGE -----------------------------------------------------------

    def _send_keepalive(self, now: float) -> list[Output]:
        body = manscdp.to_xml(
            manscdp.Keepalive(device_id=self.config.device_id, sn=self._next_sn(), status="OK")
        )
        self.counters.keepalives_sent += 1
        return self._send_message(now, body, "keepalive")

    def _on_keepalive_result(self, ok: bool, status: int | None, now: float) -> list[Output]:
        if ok:
            self._keepalive_failures = 0
            self.counters.keepalives_ok += 1
            return []
        if (status is not None and 400 <= status < 500) or (
            self._keepalive_failures + 1 >= self.config.keepalive_max_failures
        ):
            # A 4xx means the server no longer knows the device; three silences mean it is
            # gone. Either way: register again (after the back-off).
            self._keepalive_failures = 0
            self._lost_registration(now)
            return []
        self._keepalive_failures += 1
        return []

    def _send_message(self, now: float, body: bytes, purpose: str) -> list[Output]:
        cfg = self.config
        request = make_request(
            "MESSAGE",
            self._server_uri,
            via=self._via(),
            from_=NameAddr(SipUri(host=cfg.domain, user=cfg.device_id), params={"tag": new_tag()}),
            to=NameAddr(SipUri(host=cfg.domain, user=cfg.server_id)),
            call_id=new_call_id(),
            cseq=1,
            headers=[("User-Agent", USER_AGENT)],
            body=body,
            content_type=MANSCDP,
        )
        return self._start_client(request, purpose, now)

    def _next_sn(self) -> int:
        self._sn += 1
        return self._sn

    # --- client transactions -------------------------------------------------------------

    def _start_client(self, request: SipRequest, purpose: str, now: float) -> list[Output]:
        transaction, actions = self._table.start_client(
            request, reliable=self.config.reliable, now=now
        )
        self._purpose[transaction] = purpose
        outputs: list[Output] = []
        for action in actions:
            outputs += self._transaction_action(transaction, action, now)
        return outputs

    def _on_response(self, response: SipResponse, now: float) -> list[Output]:
        branch = response.branch
        transaction = next(
            (t for t in self._purpose if t.request.branch == branch),
            None,
        )
        actions = self._table.on_response(response, now)
        if actions is None or transaction is None:
            return []
        outputs: list[Output] = []
        for action in actions:
            outputs += self._transaction_action(transaction, action, now)
        return outputs

    def _transaction_action(
        self, transaction: ClientTransaction | ServerTransaction, action: object, now: float
    ) -> list[Output]:
        if isinstance(transaction, ServerTransaction):
            if isinstance(action, Send):
                return [Transmit(action.data, self._reply_to.get(transaction))]
            if isinstance(action, Timeout) and action.timer == "L":
                # The platform never ACKed the 200: no stream.
                call_id = transaction.request.call_id
                if call_id in self.dialogs and not self.dialogs[call_id].acked:
                    del self.dialogs[call_id]
            if isinstance(action, Terminated):
                self._reply_to.pop(transaction, None)
            return []
        purpose = self._purpose.get(transaction)
        if isinstance(action, Send):
            return [Transmit(action.data, self._reg.server)]
        if isinstance(action, Deliver) and isinstance(action.message, SipResponse):
            response = action.message
            if purpose == "register":
                if response.status >= 200:
                    self._purpose.pop(transaction, None)
                return self._on_register_response(response, now)
            if response.status >= 200:
                self._purpose.pop(transaction, None)
                if purpose == "keepalive":
                    return self._on_keepalive_result(response.success, response.status, now)
            return []
        if isinstance(action, Timeout):
            self._purpose.pop(transaction, None)
            if purpose == "register":
                if self._reg.unregistering:
                    self._reg.unregistering = False
                    return []
                return self._register_failed(now)
            if purpose == "keepalive":
                return self._on_keepalive_result(False, None, now)
        if isinstance(action, Terminated):
            self._purpose.pop(transaction, None)
        return []

    # --- requests from the platform ------------------------------------------------------

    def _on_request(self, request: SipRequest, now: float, source: Address | None) -> list[Output]:
        transaction, actions = self._table.on_request(
            request, reliable=self.config.reliable, now=now
        )
        if transaction is not None:
            self._reply_to.setdefault(transaction, source)
        outputs: list[Output] = []
        delivered: list[SipRequest] = []
        # The transaction's own sends (100 Trying, retransmitted answers) go out before what
        # the device answers to the request it delivers.
        for action in actions:
            if isinstance(action, Deliver) and isinstance(action.message, SipRequest):
                delivered.append(action.message)
            elif transaction is not None:
                outputs += self._transaction_action(transaction, action, now)
        for message in delivered:
            outputs += self._handle(message, transaction, now, source)
        return outputs

    def _respond(
        self,
        transaction: ServerTransaction | None,
        response: SipResponse,
        now: float,
    ) -> list[Output]:
        if transaction is None:
            return []
        outputs: list[Output] = []
        for action in self._table.send_response(transaction, response, now):
            outputs += self._transaction_action(transaction, action, now)
        return outputs

    def _handle(
        self,
        request: SipRequest,
        transaction: ServerTransaction | None,
        now: float,
        source: Address | None,
    ) -> list[Output]:
        method = request.method
        if method == "ACK":
            return self._on_ack(request)
        if method == "MESSAGE":
            return self._on_message(request, transaction, now)
        if method == "INVITE":
            return self._on_invite(request, transaction, now, source)
        if method == "BYE":
            dialog = self.dialogs.pop(request.call_id, None)
            status = 200 if dialog is not None else 481
            outputs = self._respond(transaction, make_response(request, status), now)
            if dialog is not None:
                outputs.append(StopStream(request.call_id))
            return outputs
        if method == "SUBSCRIBE":
            return self._on_subscribe(request, transaction, now)
        if method in ("INFO", "OPTIONS", "NOTIFY", "CANCEL"):
            # INFO carries MANSRTSP (pause, seek, speed): accepted, the replay goes on.
            status = 481 if method == "CANCEL" else 200
            return self._respond(transaction, make_response(request, status), now)
        return self._respond(transaction, make_response(request, 501), now)

    # --- MANSCDP ---------------------------------------------------------------------------

    def _on_message(
        self, request: SipRequest, transaction: ServerTransaction | None, now: float
    ) -> list[Output]:
        self.counters.messages_in += 1
        try:
            parsed = manscdp.parse(request.body)
        except ParseError:
            return self._respond(transaction, make_response(request, 400), now)
        outputs = self._respond(transaction, make_response(request, 200), now)
        message = parsed.message
        encoding = parsed.encoding if parsed.encoding.upper() in ("GB2312", "UTF-8") else "GB2312"
        for body in self._answers(message, now):
            data = (
                serialise(body, encoding)
                if isinstance(body, Element)
                else manscdp.to_xml(body, encoding)
            )
            outputs += self._send_message(now, data, "message")
        outputs += self._deferred
        self._deferred = []
        return outputs

    def snapshots_uploaded(
        self, channel_id: str, session_id: str, file_ids: list[str], now: float
    ) -> list[Output]:
        """The pictures of a SnapShotConfig are uploaded: UploadSnapShotFinished."""
        self.snapshot_reports.append((session_id, tuple(file_ids)))
        note = manscdp.UploadSnapShotFinished(
            device_id=channel_id,
            sn=self._next_sn(),
            session_id=session_id,
            file_ids=tuple(file_ids),
        )
        return self._send_message(now, manscdp.to_xml(note), "message")

    def _config_known(self, target: str, block: manscdp.ConfigBlock) -> bool:
        if target != self.config.device_id and target not in self._channels:
            return False
        if isinstance(block, manscdp.RawConfig):
            return block.tag in STANDARD_TYPES
        return True

    def _device_config(self, message: manscdp.DeviceConfig, sn: int) -> manscdp.Result:
        self.device_configs.append(message)
        target = message.device_id
        known = bool(message.configs) and all(
            self._config_known(target, block) for block in message.configs
        )
        result = self.config_result or ("OK" if known else "ERROR")
        if result == "OK":
            for block in message.configs:
                self.stored_configs[(target, manscdp.block_tag(block))] = block
                if isinstance(block, manscdp.SnapShotConfig) and self.take_snapshots:
                    self._deferred.append(
                        UploadSnapshots(
                            channel_id=target,
                            session_id=block.session_id,
                            url=block.upload_url,
                            count=max(1, min(10, block.snap_num)),
                            interval=float(max(0, block.interval)),
                        )
                    )
        return manscdp.Result(cmd_type="DeviceConfig", device_id=target, sn=sn, result=result)

    def _config_download(self, message: manscdp.ConfigDownloadQuery, sn: int) -> manscdp.Message:
        cfg = self.config
        target = message.device_id or cfg.device_id
        blocks: list[manscdp.ConfigBlock] = []
        for tag in message.config_types:
            block = self.stored_configs.get((target, tag))
            if block is None and tag == "BasicParam":
                block = manscdp.BasicParam(
                    name=f"{'NVR' if cfg.is_nvr else 'IPC'}-{target[-4:]}",
                    expiration=cfg.expires,
                    heartbeat_interval=max(1, round(cfg.keepalive_interval)),
                    heartbeat_count=cfg.keepalive_max_failures,
                )
            if block is not None:
                blocks.append(block)
        return manscdp.ConfigDownload(device_id=target, sn=sn, configs=tuple(blocks))

    def _keep_preset(self, channel_id: str, command: PtzCommand) -> None:
        if not isinstance(command, PtzPreset):
            return
        if command.op is PresetOp.SET:
            table = self.presets.setdefault(channel_id, {})
            table.setdefault(command.number, f"预置点{command.number}")
        elif command.op is PresetOp.DELETE:
            self.presets.get(channel_id, {}).pop(command.number, None)

    def _preset_list(self, message: manscdp.Unknown, sn: int) -> Element:
        """The PresetQuery answer: the channel's presets by number (a PresetList)."""
        target = message.device_id or self.config.device_id
        root = Element("Response")
        root.add("CmdType", "PresetQuery")
        root.add("SN", sn)
        root.add("DeviceID", target)
        if target != self.config.device_id and target not in self._channels:
            root.add("Result", "ERROR")
            return root
        presets = sorted(self.presets.get(target, {}).items())
        root.add("SumNum", len(presets))
        listed = root.append(Element("PresetList", attributes={"Num": str(len(presets))}))
        for number, name in presets:
            item = listed.append(Element("Item"))
            item.add("PresetID", number)
            item.add("PresetName", name)
        return root

    def _answers(self, message: manscdp.Message, now: float) -> list[manscdp.Message | Element]:
        cfg = self.config
        sn = message.sn if message.sn is not None else 0
        if isinstance(message, manscdp.CatalogQuery):
            channels = tuple(self._channels.values())
            catalog = catalog_items(cfg.device_id, cfg.civil_code or cfg.domain[:6], channels)
            return list(manscdp.catalog_pages(cfg.device_id, sn, catalog, cfg.catalog_page_size))
        if isinstance(message, manscdp.DeviceInfoQuery):
            return [
                manscdp.DeviceInfo(
                    device_id=message.device_id or cfg.device_id,
                    sn=sn,
                    device_name=f"{'NVR' if cfg.is_nvr else 'IPC'}-{cfg.device_id[-4:]}",
                    manufacturer=cfg.manufacturer,
                    model=cfg.model,
                    firmware=cfg.firmware,
                    channel=len(cfg.channels),
                )
            ]
        if isinstance(message, manscdp.DeviceStatusQuery):
            return [
                manscdp.DeviceStatus(
                    device_id=message.device_id or cfg.device_id,
                    sn=sn,
                    online="ON",
                    status="OK",
                    encode="ON",
                    record="OFF",
                    device_time=(
                        datetime.fromtimestamp(now, UTC).replace(tzinfo=None)
                        + timedelta(hours=cfg.utc_offset_hours)
                    ),
                )
            ]
        if isinstance(message, manscdp.DeviceConfig):
            return [self._device_config(message, sn)]
        if isinstance(message, manscdp.ConfigDownloadQuery):
            return [self._config_download(message, sn)]
        if (
            isinstance(message, manscdp.Unknown)
            and message.kind is manscdp.Kind.QUERY
            and message.cmd_type == "PresetQuery"
        ):
            return [self._preset_list(message, sn)]
        if isinstance(message, manscdp.Unknown) and message.kind is manscdp.Kind.QUERY:
            # The 2022 queries (SD card, PTZ position, home position, presets, …): a plain
            # answer, as a device with nothing to report gives.
            return [
                manscdp.Unknown(
                    kind=manscdp.Kind.RESPONSE,
                    cmd_type=message.cmd_type,
                    device_id=message.device_id or cfg.device_id,
                    sn=sn,
                    fields={"Result": "OK", "SumNum": "0"},
                )
            ]
        if isinstance(message, manscdp.RecordInfoQuery):
            channel = self._channels.get(message.device_id)
            items = (
                record_items(channel, message.start_time, message.end_time)
                if channel is not None
                and message.end_time - message.start_time < timedelta(days=32)
                else []
            )
            name = channel.name if channel is not None else None
            return list(
                manscdp.record_pages(message.device_id, sn, items, cfg.record_page_size, name=name)
            )
        if isinstance(message, manscdp.Result) and message.cmd_type == "Alarm":
            self.alarm_answers.append(message)
            del self.alarm_answers[:-MAX_PTZ_KEPT]
            return []
        if isinstance(message, manscdp.DeviceControl):
            if message.ptz_cmd is not None:
                # A bad PTZCmd is acknowledged and ignored, as cameras do.
                with contextlib.suppress(ParseError):
                    decoded = decode_ptz(message.ptz_cmd)
                    self.ptz_commands.append((message.device_id, decoded))
                    self._keep_preset(message.device_id, decoded.command)
                return []  # PTZ has no Result answer
            self.controls.append(message)
            return [
                manscdp.Result(
                    cmd_type="DeviceControl",
                    device_id=message.device_id,
                    sn=sn,
                    result=self.control_result,
                )
            ]
        return []

    # --- subscriptions and what they bring ------------------------------------------------------

    def subscribed(self, topic: str) -> bool:
        return any(sub.topic == topic for sub in self.subscriptions.values())

    def _on_subscribe(
        self, request: SipRequest, transaction: ServerTransaction | None, now: float
    ) -> list[Output]:
        self.counters.subscribes += 1
        cfg = self.config
        if cfg.refuse_subscribe:
            return self._respond(transaction, make_response(request, cfg.refuse_subscribe), now)
        try:
            message = manscdp.parse_message(request.body)
        except ParseError:
            return self._respond(transaction, make_response(request, 400), now)
        topic = manscdp.cmd_type_of(message)
        if topic not in ("Catalog", "Alarm", "MobilePosition"):
            return self._respond(transaction, make_response(request, 489, "Bad Event"), now)
        asked = request.expires
        expires = min(cfg.max_subscribe_expires, asked if asked is not None else 3600)
        existing = self.subscriptions.get(request.call_id)
        if request.to.tag is not None and existing is None:
            return self._respond(transaction, make_response(request, 481), now)
        if existing is None:
            contacts = request.contacts
            existing = _Subscription(
                topic=topic,
                call_id=request.call_id,
                local=request.to.with_tag(new_tag()),
                remote=request.from_,
                target=str(contacts[0].uri) if contacts else request.uri,
                event=request.headers.get("Event") or topic,
                expires_at=now + expires,
            )
            self.subscriptions[request.call_id] = existing
        sub = existing
        sub.expires_at = now + expires
        if isinstance(message, manscdp.MobilePositionQuery):
            sub.interval = float(max(1, message.interval or 5))
            if cfg.mobile and sub.next_at is None:
                sub.next_at = now + sub.interval
        if expires == 0:
            del self.subscriptions[sub.call_id]
        response = make_response(
            request,
            200,
            to_tag=sub.local.tag,
            headers=[
                ("Contact", str(self._contact())),
                ("Expires", str(expires)),
                ("User-Agent", USER_AGENT),
            ],
        )
        return self._respond(transaction, response, now)

    def _notify(self, sub: _Subscription, body: bytes, now: float) -> list[Output]:
        sub.cseq += 1
        left = max(0, int(sub.expires_at - now))
        request = make_request(
            "NOTIFY",
            sub.target,
            via=self._via(),
            from_=sub.local,
            to=sub.remote,
            call_id=sub.call_id,
            cseq=sub.cseq,
            headers=[
                ("Event", sub.event),
                ("Subscription-State", f"active;expires={left}"),
                ("User-Agent", USER_AGENT),
            ],
            body=body,
            content_type=MANSCDP,
        )
        self.counters.notifies_sent += 1
        return self._start_client(request, "notify", now)

    def _subscription(self, topic: str) -> _Subscription | None:
        return next((s for s in self.subscriptions.values() if s.topic == topic), None)

    def _local_time(self, now: float) -> datetime:
        return datetime.fromtimestamp(now, UTC).replace(tzinfo=None) + timedelta(
            hours=self.config.utc_offset_hours
        )

    def raise_alarm(
        self,
        now: float,
        channel_id: str | None = None,
        *,
        priority: int = 1,
        method: str = "5",
        alarm_type: int | None = 2,
        description: str = "移动侦测报警",
        subscribed: bool = True,
    ) -> list[Output]:
        """An alarm on a channel (the first when None): a NOTIFY in the Alarm subscription
        (``subscribed`` and there is one), else a MESSAGE as devices send on their own."""
        channel = self._channels.get(channel_id or "") or next(iter(self._channels.values()))
        alarm = manscdp.Alarm(
            device_id=channel.channel_id,
            sn=self._next_sn(),
            alarm_priority=priority,
            alarm_method=method,
            alarm_time=self._local_time(now),
            alarm_description=description,
            longitude=channel.longitude,
            latitude=channel.latitude,
            alarm_type=alarm_type,
        )
        body = manscdp.to_xml(alarm)
        sub = self._subscription("Alarm") if subscribed else None
        if sub is not None:
            return self._notify(sub, body, now)
        return self._send_message(now, body, "message")

    def add_channel(self, now: float, channel: Channel) -> list[Output]:
        """A new channel, announced as a catalogue change (Event ADD)."""
        self._channels[channel.channel_id] = channel
        return self._catalog_change(now, channel, "ADD")

    def remove_channel(self, now: float, channel_id: str) -> list[Output]:
        """A channel gone, announced as a catalogue change (Event DEL)."""
        channel = self._channels.pop(channel_id, None)
        if channel is None:
            return []
        return self._catalog_change(now, channel, "DEL")

    def channel_status(self, now: float, channel_id: str, event: str) -> list[Output]:
        """A channel's status change as a catalogue notify: ON, OFF, VLOST, DEFECT."""
        channel = self._channels.get(channel_id)
        if channel is None:
            return []
        return self._catalog_change(now, channel, event)

    def _catalog_change(self, now: float, channel: Channel, event: str) -> list[Output]:
        cfg = self.config
        (item,) = catalog_items(cfg.device_id, cfg.civil_code or cfg.domain[:6], (channel,))
        change = manscdp.Catalog(
            device_id=cfg.device_id,
            sn=self._next_sn(),
            sum_num=1,
            items=(dataclasses.replace(item, event=event),),
            kind=manscdp.Kind.NOTIFY,
        )
        body = manscdp.to_xml(change)
        sub = self._subscription("Catalog")
        if sub is not None:
            return self._notify(sub, body, now)
        return self._send_message(now, body, "message")

    def _send_positions(self, sub: _Subscription, now: float) -> list[Output]:
        """Every channel a step along a small circle around its place: one point in the 2016
        form for a single channel, the 2022 list for several."""
        sub.step += 1
        angle = sub.step * math.pi / 12
        at = self._local_time(now)
        points = tuple(
            manscdp.Position(
                device_id=ch.channel_id,
                time=at,
                longitude=round(ch.longitude + 0.002 * math.cos(angle), 6),
                latitude=round(ch.latitude + 0.002 * math.sin(angle), 6),
                speed=20.0,
                direction=round(math.degrees(angle + math.pi / 2) % 360, 1),
                altitude=12.0,
            )
            for ch in self._channels.values()
        )
        if not points:
            return []
        named = points[0].device_id if len(points) == 1 else None
        message = manscdp.MobilePosition(
            device_id=named or self.config.device_id,
            sn=self._next_sn(),
            positions=points,
        )
        return self._notify(sub, manscdp.to_xml(message), now)

    # --- INVITE and media --------------------------------------------------------------------

    def _on_invite(
        self,
        request: SipRequest,
        transaction: ServerTransaction | None,
        now: float,
        source: Address | None,
    ) -> list[Output]:
        self.counters.invites += 1
        call_id = request.call_id
        if call_id in self.dialogs:  # a re-INVITE: keep the session as it is
            dialog = self.dialogs[call_id]
            return self._respond(transaction, self._ok_for(request, dialog), now)
        target = request.request_uri.user or ""
        channel = self._channels.get(target)
        if channel is None and target == self.config.device_id and len(self._channels) == 1:
            channel = next(iter(self._channels.values()))
        if channel is None:
            return self._respond(transaction, make_response(request, 404), now)
        try:
            offer = sdp.parse(request.body)
        except ParseError:
            return self._respond(transaction, make_response(request, 488), now)
        media = offer.first_media()
        address = (media.address if media else None) or offer.address or (source or ("", 0))[0]
        if media is None or media.refused or not address:
            return self._respond(transaction, make_response(request, 488), now)
        transport = sdp.Transport.TCP if media.is_tcp else sdp.Transport.UDP
        answer_draft = sdp.answer_for(offer, device_id=self.config.device_id, address="", port=0)
        port = self._allocate_port(call_id, transport, answer_draft.setup)
        ssrc = offer.ssrc_value
        if ssrc is None:
            ssrc = int(self._rng.random() * 1_000_000_000)
        history = offer.session_type in (sdp.SessionType.PLAYBACK, sdp.SessionType.DOWNLOAD)
        start = StartStream(
            call_id=call_id,
            channel_id=channel.channel_id,
            session_type=offer.session_type or sdp.SessionType.PLAY,
            ssrc=ssrc,
            transport=transport,
            setup=answer_draft.setup,
            remote=(address, media.port),
            local_port=port,
            start=offer.range_unix[0] if history else 0,
            stop=offer.range_unix[1] if history else 0,
            speed=float(media.download_speed or 1),
            stream_number=media.stream_number or 0,
        )
        dialog = _Dialog(invite=request, to_tag=new_tag(), start=start)
        self.dialogs[call_id] = dialog
        return self._respond(transaction, self._ok_for(request, dialog), now)

    def _ok_for(self, request: SipRequest, dialog: _Dialog) -> SipResponse:
        start = dialog.start
        answer = sdp.Answer(
            device_id=start.channel_id,
            address=self.config.media_host,
            port=start.local_port,
            ssrc=f"{start.ssrc:010d}",
            session_type=start.session_type,
            transport=start.transport,
            setup=start.setup,
        )
        return make_response(
            request,
            200,
            to_tag=dialog.to_tag,
            headers=[("Contact", str(self._contact())), ("User-Agent", USER_AGENT)],
            body=answer.to_bytes(),
            content_type="application/sdp",
        )

    def _on_ack(self, ack: SipRequest) -> list[Output]:
        dialog = self.dialogs.get(ack.call_id)
        if dialog is None or dialog.acked:
            return []
        dialog.acked = True
        return [dialog.start]

    # --- addressing --------------------------------------------------------------------------

    def _via(self) -> Via:
        return Via(
            transport="TCP" if self.config.reliable else "UDP",
            host=self.local[0],
            port=self.local[1],
            params={"rport": None, "branch": new_branch()},
        )

    def _contact(self) -> NameAddr:
        host, port = self.local
        return NameAddr(SipUri(host=host, user=self.config.device_id, port=port))


def _challenge_in(response: SipResponse) -> DigestChallenge | None:
    name = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
    try:
        return DigestChallenge.parse(response.headers.get(name) or "")
    except ParseError:
        return None
