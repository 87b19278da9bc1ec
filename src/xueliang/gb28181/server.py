"""The platform's GB/T 28181 SIP server: keepalive-driven online state, what devices send (MESSAGE,
NOTIFY, requests in our dialogs), and the queries the platform sends a device on its own
(DeviceInfo, Catalog). REGISTER (digest, refreshes, restarts, the 302 of a cluster's front) and
the register's batched writes are registration.py's, which this server builds on.

It speaks through the sans-I/O core (sip/, manscdp/, registrar.py) and the asyncio transport;
what the platform keeps (the register, statuses, channels) is behind ``Directory``, whose
methods block (database) and run in worker threads, so that a slow database never delays a
SIP answer. Answers are sent first, work is done after: a keepalive storm of thousands of
devices costs a parse and a heap push each.

Behaviour where devices differ from the textbook (see gb28181-interop.md):
- responses go back to the address a request came from (received/rport), never to what Via
  claims, and requests to a device go to its Contact only when that names the host its packets
  come from (no NAT in between), so devices behind NAT hear us;
- a keepalive from a device that is not registered (after the platform restarted) is answered
  403, which makes devices register again at once instead of at their next expiry;
- catalogue pages arrive in any order, repeated or missing; a catalogue is applied when SumNum
  items have arrived or CATALOG_WAIT seconds after its last page, and a partial one adds and
  updates but never deletes.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from xueliang.gb28181 import manscdp
from xueliang.gb28181.answers import PendingAnswer
from xueliang.gb28181.endpoint import DeviceRefused, in_dialog
from xueliang.gb28181.errors import ParseError
from xueliang.gb28181.registrar import Address, Registrar
from xueliang.gb28181.registration import LANES, RegistrarEndpoint, device_id_of
from xueliang.gb28181.sip import (
    NameAddr,
    ServerTransaction,
    SipRequest,
    SipResponse,
    make_request,
    new_call_id,
    new_tag,
)

log = logging.getLogger(__name__)

MANSCDP = "Application/MANSCDP+xml"
CATALOG_WAIT = 10.0  # seconds after a catalogue's last page before a partial one is applied
QUERY_TIMEOUT = 32.0  # Timer F: a device that never answers a query


class Directory(Protocol):
    """What the platform keeps; every method may block (called in a worker thread)."""

    def password_for(self, device_id: str) -> str | None:
        """The password this device must register with; None: it may not register."""
        ...

    def online(self, device_id: str, address: Address, renewed: bool) -> None: ...

    def offline(self, device_id: str, reason: str) -> None: ...

    def device_info(self, device_id: str, info: manscdp.DeviceInfo) -> None: ...

    def catalog(self, device_id: str, items: list[manscdp.CatalogItem], complete: bool) -> None: ...

    def keepalive(self, device_id: str, info: manscdp.Keepalive) -> None: ...


@dataclass(slots=True)
class _Catalog:
    assembly: manscdp.CatalogAssembly
    last_page: float


@dataclass(frozen=True, slots=True)
class ServerStats:
    registered: int
    registrations: int
    keepalives: int
    refused: int
    malformed: int
    redirected: int = 0  # REGISTERs answered 302 (the front of a cluster)


class GbServer(RegistrarEndpoint):
    def __init__(
        self,
        directory: Directory,
        *,
        platform_id: str,
        domain: str,
        host: str = "127.0.0.1",
        port: int = 5060,
        registrar: Registrar | None = None,
        timezone: str = "Asia/Shanghai",
        clock: Callable[[], float] = time.monotonic,
        lanes: int = LANES,
        redirect_to: Sequence[str] = (),
    ) -> None:
        super().__init__(
            directory,
            domain=domain,
            host=host,
            port=port,
            registrar=registrar,
            timezone=timezone,
            clock=clock,
            lanes=lanes,
            redirect_to=redirect_to,
        )
        self.platform_id = platform_id
        self._catalogs: dict[tuple[str, int], _Catalog] = {}
        self._sn = itertools.count(1)
        self._answers: dict[tuple[str, str, int], PendingAnswer] = {}
        # Notifications a device sends on its own (Alarm, MobilePosition, MediaStatus, …):
        # each listener gets (sender device ID, message, request); called on the event loop.
        self.notify_listeners: list[Callable[[str, manscdp.Message, SipRequest], None]] = []
        self.keepalives = 0

    def stats(self) -> ServerStats:
        return ServerStats(
            len(self.registrar),
            self.registrations,
            self.keepalives,
            self.refused,
            self._transport.malformed,
            self.redirected,
        )

    # --- life --------------------------------------------------------------------------------

    async def start(self) -> None:
        await super().start()
        log.info("GB/T 28181 SIP server %s on %s:%d", self.platform_id, self.host, self.port)

    def _tick(self, now: float) -> None:
        super()._tick(now)
        for key, pending in list(self._catalogs.items()):
            if now - pending.last_page > CATALOG_WAIT:
                del self._catalogs[key]
                self._apply_catalog(pending.assembly, complete=False)

    def wall_time(self, at: float) -> float:
        """Unix time of a moment on the server's clock (registrations keep monotonic times)."""
        return time.time() - (self._clock() - at)

    def target(self, device_id: str) -> Address:
        """Where requests to a registered device go; LookupError when it is not registered."""
        reg = self.registrar.get(device_id)
        if reg is None:
            raise LookupError(f"device {device_id} is not registered")
        return _request_target(reg.address, reg.contact)

    def contact(self) -> NameAddr:
        return NameAddr.parse(f"<sip:{self.platform_id}@{self.host}:{self.port}>")

    def make_request(
        self,
        method: str,
        device_id: str,
        to: Address,
        *,
        target_id: str | None = None,
        body: bytes = b"",
        content_type: str | None = MANSCDP,
        headers: list[tuple[str, str]] | None = None,
    ) -> SipRequest:
        """An out-of-dialog request to a device (``target_id``: the channel it is about, as
        the Request-URI and To user of an INVITE)."""
        user = target_id or device_id
        dialog_creating = method in ("INVITE", "SUBSCRIBE")
        return make_request(
            method,
            f"sip:{user}@{to.host}:{to.port}",
            via=self.via(to),
            from_=NameAddr.parse(f"<sip:{self.platform_id}@{self.domain}>;tag={new_tag()}"),
            to=NameAddr.parse(f"<sip:{user}@{self.domain}>"),
            call_id=new_call_id(),
            cseq=next(self._sn),
            contact=self.contact() if dialog_creating else None,
            headers=headers or [],
            body=body,
            content_type=content_type if body else None,
        )

    def request(
        self, method: str, device_id: str, body: bytes = b"", content_type: str = MANSCDP
    ) -> asyncio.Future[SipResponse]:
        """Send a request to a registered device; the future gets its final response."""
        try:
            to = self.target(device_id)
        except LookupError as exc:
            future: asyncio.Future[SipResponse] = asyncio.get_running_loop().create_future()
            future.set_exception(exc)
            return future
        request = self.make_request(
            method, device_id, to, body=body, content_type=content_type if body else None
        )
        return self.send_request(request, to)

    async def ask(
        self, device_id: str, message: manscdp.Message, *, page_wait: float = 10.0
    ) -> manscdp.Message:
        """Send a query or control and wait for the device's answering MESSAGE (the one with
        the same CmdType and SN). Paged answers (RecordInfo) are gathered until SumNum items
        have come, or ``page_wait`` seconds after the last page (then what came is returned).
        TimeoutError when nothing came; LookupError when the device is not registered."""
        sn = getattr(message, "sn", None)
        cmd = manscdp.cmd_type_of(message)
        if sn is None or cmd is None:
            raise ValueError("ask needs a message with a CmdType and an SN")
        key = (device_id, cmd, sn)
        answers = PendingAnswer(asyncio.get_running_loop().create_future())
        self._answers[key] = answers
        try:
            response = await self.query(device_id, message)
            if not response.success:
                raise DeviceRefused(response.status, response.reason)
            return await answers.result(page_wait)
        finally:
            self._answers.pop(key, None)

    def query(self, device_id: str, message: manscdp.Message) -> asyncio.Future[SipResponse]:
        return self.request("MESSAGE", device_id, manscdp.to_xml(message))

    def next_sn(self) -> int:
        return next(self._sn)

    def _dispatch(
        self,
        transaction: ServerTransaction | None,
        request: SipRequest,
        source: Address,
        now: float,
    ) -> None:
        method = request.method
        if method == "REGISTER":
            self._register(transaction, request, source, now)
        elif method == "MESSAGE" or (method == "NOTIFY" and not in_dialog(request)):
            self._message(transaction, request, source, now)
        elif method == "ACK":
            return
        elif method in ("BYE", "INFO") or (method == "NOTIFY" and in_dialog(request)):
            self._dialog_request(transaction, request, source)
        elif method in ("CANCEL", "OPTIONS"):
            self._respond(transaction, request, source, 200)
        else:
            self._respond(transaction, request, source, 405, headers=[("Allow", ALLOW)])

    # --- a device registered anew ------------------------------------------------------------

    def _arrived(self, device_id: str) -> None:
        # Learn what it is and what it has, as soon as it is here.
        for asked in (
            self.query(device_id, manscdp.DeviceInfoQuery(device_id=device_id, sn=self.next_sn())),
            self.refresh_catalog(device_id),
        ):
            asked.add_done_callback(_unanswered)

    def refresh_catalog(self, device_id: str) -> asyncio.Future[SipResponse]:
        sn = self.next_sn()
        self._catalogs[(device_id, sn)] = _Catalog(
            manscdp.CatalogAssembly(device_id, sn), self._clock()
        )
        return self.query(device_id, manscdp.CatalogQuery(device_id=device_id, sn=sn))

    # --- MESSAGE / NOTIFY --------------------------------------------------------------------

    def _message(
        self,
        transaction: ServerTransaction | None,
        request: SipRequest,
        source: Address,
        now: float,
    ) -> None:
        try:
            parsed = manscdp.parse(request.body)
        except ParseError as exc:
            self._respond(transaction, request, source, 400, f"bad MANSCDP body: {exc}"[:120])
            return
        msg = parsed.message
        device_id = getattr(msg, "device_id", None) or device_id_of(request)
        sender = device_id_of(request) or device_id
        if isinstance(msg, manscdp.Keepalive):
            if sender is None or not self.registrar.seen(sender, source, now, keepalive=True):
                self._respond(transaction, request, source, 403, "not registered")
                return
            self.keepalives += 1
            self._respond(transaction, request, source, 200)
            if msg.faulty_device_ids:
                directory = self._directory
                self._spawn(sender, lambda: directory.keepalive(sender, msg))
            return
        if sender is None or not self.registrar.seen(sender, source, now, keepalive=False):
            self._respond(transaction, request, source, 403, "not registered")
            return
        self._respond(transaction, request, source, 200)
        if isinstance(msg, manscdp.Catalog) and not _is_change(msg):
            self._catalog_page(sender, msg, now)
            return  # (a notify of changes, ADD/DEL/ON/OFF…, goes to the listeners below)
        if isinstance(msg, manscdp.DeviceInfo):
            directory = self._directory
            self._spawn(sender, lambda: directory.device_info(sender, msg))
        cmd = manscdp.cmd_type_of(msg)
        sn = getattr(msg, "sn", None)
        waiting = self._answers.get((sender, cmd or "", sn)) if sn is not None else None
        if waiting is not None:
            waiting.add(msg)
            return
        handler = self._dialogs.get(request.call_id)
        if handler is not None:  # e.g. MediaStatus sent inside the stream's dialog
            handler(request)
        for listener in list(self.notify_listeners):
            try:
                listener(sender, msg, request)
            except Exception:
                log.exception("GB/T 28181: a listener failed on %s", type(msg).__name__)

    def _catalog_page(self, device_id: str, page: manscdp.Catalog, now: float) -> None:
        key = (device_id, page.sn or 0)
        pending = self._catalogs.get(key)
        if pending is None:
            # An unsolicited catalogue (a notify of changes, or an answer to a query that
            # timed out here): assemble it all the same.
            pending = self._catalogs[key] = _Catalog(
                manscdp.CatalogAssembly(device_id, page.sn or 0), now
            )
        pending.last_page = now
        try:
            complete = pending.assembly.add(page)
        except ValueError:
            return
        if complete:
            del self._catalogs[key]
            self._apply_catalog(pending.assembly, complete=True)

    def _apply_catalog(self, assembly: manscdp.CatalogAssembly, *, complete: bool) -> None:
        items = list(assembly.items)
        if not items:
            return
        directory = self._directory
        self._spawn(
            assembly.device_id, lambda: directory.catalog(assembly.device_id, items, complete)
        )


ALLOW = "REGISTER, MESSAGE, NOTIFY, INVITE, ACK, BYE, CANCEL, INFO, OPTIONS"


def _unanswered(future: asyncio.Future[SipResponse]) -> None:
    """A query the platform sent on its own: a device that does not answer is logged."""
    if future.cancelled():
        return
    failure = future.exception()
    if failure is not None:
        log.info("GB/T 28181: a device left a query unanswered: %s", failure)


def _is_change(catalog: manscdp.Catalog) -> bool:
    """A catalogue notify of changes (items with an Event), not a catalogue to assemble."""
    return catalog.kind is manscdp.Kind.NOTIFY and any(item.event for item in catalog.items)


def _request_target(source: Address, contact: str) -> Address:
    """Where requests to a device go: its Contact when it wrote its own address there (no NAT
    between us; some devices send from one port and listen on another), otherwise the address
    its packets came from, the only one a NAT lets through. Over TCP: its connection."""
    if source.transport == "tcp" or not contact:
        return source
    try:
        uri = NameAddr.parse(contact).uri
    except ParseError:
        return source
    if uri.host == source.host and uri.port:
        return Address(source.host, uri.port, source.transport)
    return source
