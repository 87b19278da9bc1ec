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

The device is put together from parts on :class:`~.core.DeviceCore` (its state and SIP
transactions): :mod:`.registration`, :mod:`.queries`, :mod:`.subscriptions` and
:mod:`.dialogs`; its settings and outputs are in :mod:`.model`. This module drives them (start,
stop, time, arriving messages) and routes the platform's requests to them.
"""

from __future__ import annotations

from xueliang.gb28181.errors import ParseError
from xueliang.gb28181.simulator.dialogs import MediaDialogsMixin
from xueliang.gb28181.simulator.model import (
    Address,
    DeviceConfig,
    Output,
    Registration,
    StartStream,
    StopStream,
    Transmit,
)
from xueliang.gb28181.simulator.queries import QueriesMixin
from xueliang.gb28181.simulator.registration import RegistrationMixin
from xueliang.gb28181.simulator.subscriptions import SubscriptionsMixin
from xueliang.gb28181.sip import (
    SipMessage,
    SipRequest,
    SipResponse,
    TransactionTable,
    make_response,
    parse_message,
)
from xueliang.gb28181.sip.transaction import ServerTransaction

# Re-exported: the tests import these from here (they live in .model).
__all__ = ["Device", "DeviceConfig", "Output", "StartStream", "StopStream", "Transmit"]


class Device(RegistrationMixin, QueriesMixin, SubscriptionsMixin, MediaDialogsMixin):
    """One simulated device; built as :class:`~.core.DeviceCore` is (config, port allocator,
    seed)."""

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
        self._reg = Registration()
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

    # --- requests from the platform ------------------------------------------------------

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
            return self._on_bye(request, transaction, now)
        if method == "SUBSCRIBE":
            return self._on_subscribe(request, transaction, now)
        if method in ("INFO", "OPTIONS", "NOTIFY", "CANCEL"):
            # INFO carries MANSRTSP (pause, seek, speed): accepted, the replay goes on.
            status = 481 if method == "CANCEL" else 200
            return self._respond(transaction, make_response(request, status), now)
        return self._respond(transaction, make_response(request, 501), now)
