"""A SIP user agent on asyncio: the transport, the transaction table and its timers, client
requests with futures for their answers, and the dialogs this side created (requests arriving
in one go to the handler registered for its Call-ID).

It knows nothing of GB/T 28181's meaning: the platform's server (server.py) and, later, the
cascade client build on it. What arrives outside a transaction's or dialog's reach is handed to
``_dispatch``, which a subclass provides.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from xueliang.gb28181.errors import ParseError
from xueliang.gb28181.registrar import Address
from xueliang.gb28181.sip import (
    ClientTransaction,
    Deliver,
    Send,
    ServerTransaction,
    SipMessage,
    SipRequest,
    SipResponse,
    Terminated,
    Timeout,
    TransactionTable,
    Via,
    make_response,
    new_branch,
    stamp_received,
)
from xueliang.gb28181.transport import SipTransport

log = logging.getLogger(__name__)

TICK_SECONDS = 0.1

DialogHandler = Callable[[SipRequest], int]


class SipEndpoint:
    def __init__(
        self, host: str, port: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.host = host
        self._clock = clock
        self._table = TransactionTable()
        self._transport = SipTransport(host, port, self._on_message)
        # Where each transaction's messages go (client: the device; server: the requester).
        self._peer: dict[int, Address] = {}
        self._waiting: dict[int, asyncio.Future[SipResponse]] = {}
        self._dialogs: dict[str, DialogHandler] = {}
        self._acks: dict[str, tuple[bytes, Address]] = {}
        self._ticker: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return self._transport.port

    async def start(self) -> None:
        await self._transport.start()
        self._ticker = asyncio.get_running_loop().create_task(self._tick_forever())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        await self._transport.stop()

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            try:
                self._tick(self._clock())
            except Exception:
                log.exception("SIP: timer handling failed")

    def _tick(self, now: float) -> None:
        for transaction, action in self._table.tick(now):
            self._act(transaction, action)

    # --- sending -----------------------------------------------------------------------------

    def _act(
        self, transaction: ClientTransaction | ServerTransaction | None, action: object
    ) -> None:
        key = id(transaction)
        if isinstance(action, Send):
            peer = self._peer.get(key)
            if peer is not None:
                self._transport.send(action.data, peer)
        elif isinstance(action, Deliver):
            response = action.message
            if isinstance(response, SipResponse) and not response.provisional:
                future = self._waiting.get(key)
                if future is not None and not future.done():
                    future.set_result(response)
                elif response.success and response.cseq.method == "INVITE":
                    # A retransmitted 2xx: the INVITE's answer did not hear our ACK.
                    ack = self._acks.get(response.call_id)
                    if ack is not None:
                        self._transport.send(*ack)
        elif isinstance(action, Timeout):
            future = self._waiting.pop(key, None)
            if future is not None and not future.done():
                future.set_exception(TimeoutError(f"no answer (timer {action.timer})"))
        elif isinstance(action, Terminated):
            self._peer.pop(key, None)
            future = self._waiting.pop(key, None)
            if future is not None and not future.done():
                future.set_exception(TimeoutError("the transaction ended without an answer"))

    def _respond(
        self,
        transaction: ServerTransaction | None,
        request: SipRequest,
        source: Address,
        status: int,
        reason: str | None = None,
        *,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        response = make_response(request, status, reason, headers=headers or [])
        if transaction is None:  # (an ACK-less path never gets here; kept for safety)
            self._transport.send(response.to_bytes(), source)
            return
        for action in self._table.send_response(transaction, response, self._clock()):
            self._act(transaction, action)

    def via(self, to: Address) -> Via:
        return Via(
            transport=to.transport.upper(),
            host=self.host,
            port=self.port,
            params={"branch": new_branch(), "rport": None},
        )

    def send_request(self, request: SipRequest, to: Address) -> asyncio.Future[SipResponse]:
        """Send ``request`` in a client transaction; the future gets its final response (or
        TimeoutError). An INVITE's 2xx is for the caller to ACK (``send_ack``)."""
        future: asyncio.Future[SipResponse] = asyncio.get_running_loop().create_future()
        transaction, actions = self._table.start_client(
            request, reliable=to.transport == "tcp", now=self._clock()
        )
        self._peer[id(transaction)] = to
        self._waiting[id(transaction)] = future
        for action in actions:
            self._act(transaction, action)
        return future

    def send_ack(self, ack: SipRequest, to: Address) -> None:
        """Send the ACK of an INVITE's 2xx, and again for each 2xx retransmission (until
        ``forget_dialog``)."""
        data = ack.to_bytes()
        self._acks[ack.call_id] = (data, to)
        self._transport.send(data, to)

    def on_dialog(self, call_id: str, handler: DialogHandler) -> None:
        """Requests that arrive in the dialog ``call_id`` (BYE, INFO, NOTIFY, and a MESSAGE
        such as MediaStatus carrying its Call-ID) go to ``handler``, which returns the status
        to answer with."""
        self._dialogs[call_id] = handler

    def forget_dialog(self, call_id: str) -> None:
        self._dialogs.pop(call_id, None)
        self._acks.pop(call_id, None)

    # --- receiving ---------------------------------------------------------------------------

    def _on_message(self, message: SipMessage, source: Address) -> None:
        now = self._clock()
        if isinstance(message, SipResponse):
            transaction = self._table.client_for(message)
            actions = self._table.on_response(message, now)
            if actions is None or transaction is None:
                return  # a stray or late response
            for action in actions:
                self._act(transaction, action)
            return
        stamp_received(message, source.host, source.port)
        server, actions = self._table.on_request(
            message, reliable=source.transport == "tcp", now=now, auto_trying=False
        )
        if server is not None:
            self._peer[id(server)] = source
        for action in actions:
            if isinstance(action, Deliver) and isinstance(action.message, SipRequest):
                self._dispatch(server, action.message, source, now)
            else:
                self._act(server, action)

    def _dispatch(
        self,
        transaction: ServerTransaction | None,
        request: SipRequest,
        source: Address,
        now: float,
    ) -> None:
        self._respond(transaction, request, source, 405)

    def _dialog_request(
        self, transaction: ServerTransaction | None, request: SipRequest, source: Address
    ) -> None:
        """A request inside a dialog this side created (BYE, INFO, a NOTIFY): its handler
        says what to answer; no dialog: 481."""
        handler = self._dialogs.get(request.call_id)
        if handler is None:
            self._respond(transaction, request, source, 481)
            return
        try:
            status = handler(request)
        except Exception:
            log.exception("SIP: %s in dialog %s failed", request.method, request.call_id)
            status = 500
        self._respond(transaction, request, source, status)


class DeviceRefused(Exception):
    """A device answered a request with a final non-2xx status."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}".strip())
        self.status = status
        self.reason = reason


def in_dialog(request: SipRequest) -> bool:
    try:
        return request.to.tag is not None
    except ParseError:
        return False
