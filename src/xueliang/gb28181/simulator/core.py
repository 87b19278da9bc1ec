"""The simulated device's state and its SIP plumbing, shared by every part of it.

:class:`DeviceCore` holds what the device keeps between calls and drives the SIP transactions:
client transactions it starts (REGISTER, MESSAGE, NOTIFY) and the server transactions of the
platform's requests, turning their actions into :class:`Transmit` outputs. What a finished
transaction means (a REGISTER answered, a keepalive lost) and what a request asks for are left
to the parts built on it: :mod:`.registration`, :mod:`.queries`, :mod:`.subscriptions`,
:mod:`.dialogs`, put together in :class:`~xueliang.gb28181.simulator.device.Device`.
"""

from __future__ import annotations

import random
from collections import deque

from xueliang.gb28181 import manscdp
from xueliang.gb28181.ptz import DecodedPtz
from xueliang.gb28181.simulator.model import (
    MANSCDP,
    MAX_PTZ_KEPT,
    USER_AGENT,
    Address,
    Counters,
    DeviceConfig,
    Dialog,
    Output,
    PortAllocator,
    Registration,
    Subscription,
    Transmit,
)
from xueliang.gb28181.sip import (
    ClientTransaction,
    NameAddr,
    SipRequest,
    SipResponse,
    SipUri,
    TransactionTable,
    Via,
    make_request,
    new_branch,
    new_call_id,
    new_tag,
)
from xueliang.gb28181.sip.transaction import Deliver, Send, ServerTransaction, Terminated, Timeout


class DeviceCore:
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
        self._reg = Registration()
        self._register_at: float | None = None
        self._keepalive_at: float | None = None
        self._keepalive_failures = 0
        self._failures = 0  # consecutive failed registration attempts, for the back-off
        self._sn = 0
        self.registered = False
        self.dialogs: dict[str, Dialog] = {}
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
        self.subscriptions: dict[str, Subscription] = {}  # by Call-ID
        # The platform's answers to this device's alarms (Response, CmdType Alarm).
        self.alarm_answers: list[manscdp.Result] = []
        self._server_uri = f"sip:{config.server_id}@{config.domain}"

    # --- hooks: what the parts built on the core answer ----------------------------------

    def _handle(
        self,
        request: SipRequest,
        transaction: ServerTransaction | None,
        now: float,
        source: Address | None,
    ) -> list[Output]:
        """A request the platform sent; answered through ``transaction``."""
        raise NotImplementedError

    def _on_register_response(self, response: SipResponse, now: float) -> list[Output]:
        raise NotImplementedError

    def _register_failed(self, now: float) -> list[Output]:
        raise NotImplementedError

    def _on_keepalive_result(self, ok: bool, status: int | None, now: float) -> list[Output]:
        raise NotImplementedError

    # --- MESSAGE ---------------------------------------------------------------------------

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
