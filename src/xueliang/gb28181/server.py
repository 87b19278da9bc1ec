"""The platform's GB/T 28181 SIP server: registration with digest, keepalive-driven online state,
and the queries the platform sends a device on its own (DeviceInfo, Catalog).

It speaks through the sans-I/O core (sip/, manscdp/, registrar.py) and the asyncio transport;
what the platform keeps (the register, statuses, channels) is behind ``Directory``, whose
methods block (database) and run in worker threads, so that a slow database never delays a
SIP answer. Answers are sent first, work is done after: a keepalive storm of thousands of
devices costs a parse and a heap push each.

Behaviour where devices differ from the textbook (see gb28181-interop.md):
- responses go back to the address a request came from (received/rport), never to what Via
  claims, and requests to a device go to its Contact only when that names the host its packets
  come from (no NAT in between), so devices behind NAT hear us;
- a device's digest username need not be its ID (only the password counts), its realm need not
  be ours, and its nonce may be reused until it expires (then ``stale=true``, not a loop);
- a keepalive from a device that is not registered (after the platform restarted) is answered
  403, which makes devices register again at once instead of at their next expiry;
- catalogue pages arrive in any order, repeated or missing; a catalogue is applied when SumNum
  items have arrived or CATALOG_WAIT seconds after its last page, and a partial one adds and
  updates but never deletes;
- as the front of a cluster (``redirect_to``), a REGISTER that authenticates is answered 302
  with the access node the device belongs on (redirect.py), and the device is not registered
  here; one that does not authenticate learns no node.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from xueliang.gb28181 import manscdp
from xueliang.gb28181.answers import PendingAnswer
from xueliang.gb28181.endpoint import DeviceRefused, SipEndpoint, in_dialog
from xueliang.gb28181.errors import ParseError
from xueliang.gb28181.redirect import MOVED, Node, choose_node, parse_nodes, redirect_contact
from xueliang.gb28181.registrar import Address, Offline, Online, Registrar
from xueliang.gb28181.sip import (
    DigestAuthenticator,
    NameAddr,
    ServerTransaction,
    SipRequest,
    SipResponse,
    make_request,
    new_call_id,
    new_tag,
)
from xueliang.gb28181.sip.digest import Outcome

log = logging.getLogger(__name__)

MANSCDP = "Application/MANSCDP+xml"
CATALOG_WAIT = 10.0  # seconds after a catalogue's last page before a partial one is applied
QUERY_TIMEOUT = 32.0  # Timer F: a device that never answers a query
# Threads writing to the register (one device's writes always on the same one); SQLite takes
# one writer at a time, so there one lane (more only wait on its lock, and time out).
LANES = 4
ARRIVALS_BATCH = 500  # devices coming online stored in one transaction at most


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


class GbServer(SipEndpoint):
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
        super().__init__(host, port, clock=clock)
        self.platform_id = platform_id
        self.domain = domain
        self.registrar = registrar if registrar is not None else Registrar()  # (empty is falsy)
        self._directory = directory
        self._zone = ZoneInfo(timezone)
        self._auth = DigestAuthenticator(domain)
        self._catalogs: dict[tuple[str, int], _Catalog] = {}
        self._sn = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._lanes = [
            ThreadPoolExecutor(1, thread_name_prefix=f"gb-db-{i}") for i in range(max(1, lanes))
        ]
        # Per lane: the devices coming online not yet stored, in a batch whose job is queued
        # on the lane and not started (None: none open); guarded by _arrivals_lock.
        self._arrivals: list[list[tuple[str, Address, bool]] | None] = [None] * len(self._lanes)
        self._arrivals_lock = threading.Lock()
        self._passwords: dict[str, tuple[float, str | None]] = {}
        self._answers: dict[tuple[str, str, int], PendingAnswer] = {}
        # Notifications a device sends on its own (Alarm, MobilePosition, MediaStatus, …):
        # each listener gets (sender device ID, message, request); called on the event loop.
        self.notify_listeners: list[Callable[[str, manscdp.Message, SipRequest], None]] = []
        # Devices arriving (True: a new registration, not a refresh) and leaving (False), for
        # the subscriptions (subscriptions.py); called on the event loop.
        self.presence_listeners: list[Callable[[str, bool], None]] = []
        self.registrations = 0
        self.keepalives = 0
        self.refused = 0
        # The front of a cluster: authenticated devices are sent on to these access nodes.
        self.redirect_to: tuple[Node, ...] = parse_nodes(redirect_to)
        self.redirected = 0
        self._redirected_once: set[str] = set()  # devices whose redirect was logged

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

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await super().stop()
        for lane in self._lanes:  # what was received is stored before the platform stops
            await asyncio.to_thread(lane.shutdown, wait=True)

    def _spawn(self, device_id: str, work: Callable[[], None]) -> None:
        """Run a blocking directory call in a worker thread; its failure is logged, never
        raised. One device's calls run in order on one lane (its row is created by ``online``
        before its DeviceInfo or catalogue is stored); different devices' run in parallel."""
        index = self._lane_of(device_id)

        def run() -> None:
            try:
                work()
            except Exception:
                log.exception("GB/T 28181: updating the register for %s failed", device_id)

        with self._arrivals_lock:
            self._arrivals[index] = None  # later arrivals are stored after this work
            self._lanes[index].submit(run)

    def _lane_of(self, device_id: str) -> int:
        return hash(device_id) % len(self._lanes)

    def _store_online(self, device_id: str, address: Address, renewed: bool) -> None:
        """``Directory.online``, batched: devices that come online while the lane is busy
        are stored together, in one transaction (``online_many`` where the directory has it),
        at the place in the lane's order where the first of them came."""
        index = self._lane_of(device_id)
        with self._arrivals_lock:
            batch = self._arrivals[index]
            if batch is not None:
                batch.append((device_id, address, renewed))
                if len(batch) >= ARRIVALS_BATCH:
                    self._arrivals[index] = None
                return
            batch = self._arrivals[index] = [(device_id, address, renewed)]

            def run() -> None:
                with self._arrivals_lock:
                    if self._arrivals[index] is batch:
                        self._arrivals[index] = None  # closed: what comes now, a new batch
                self._online_batch(batch)

            self._lanes[index].submit(run)

    def _online_batch(self, batch: list[tuple[str, Address, bool]]) -> None:
        directory = self._directory
        many = getattr(directory, "online_many", None)
        if many is not None and len(batch) > 1:
            try:
                many(batch)
                return
            except Exception:
                log.exception("GB/T 28181: storing %d devices failed; one by one", len(batch))
        for device_id, address, renewed in batch:
            try:
                directory.online(device_id, address, renewed)
            except Exception:
                log.exception("GB/T 28181: updating the register for %s failed", device_id)

    def _tick(self, now: float) -> None:
        super()._tick(now)
        for gone in self.registrar.expire(now):
            self._went_offline(gone)
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

    # --- REGISTER ----------------------------------------------------------------------------

    def _register(
        self,
        transaction: ServerTransaction | None,
        request: SipRequest,
        source: Address,
        now: float,
    ) -> None:
        device_id = _device_id(request)
        if device_id is None:
            self._respond(transaction, request, source, 400, "From has no 20-digit device ID")
            return
        authorization = request.headers.get("Authorization")
        if authorization is None:
            self._challenge(transaction, request, source, now)
            return
        cached = self._passwords.get(device_id)
        if cached is not None and now - cached[0] < 60:
            self._finish_register(transaction, request, source, now, device_id, cached[1])
            return

        async def look_up() -> None:
            try:
                password = await asyncio.to_thread(self._directory.password_for, device_id)
            except Exception:
                log.exception("GB/T 28181: password lookup for %s failed", device_id)
                self._respond(transaction, request, source, 500, "register unavailable")
                return
            self._passwords[device_id] = (self._clock(), password)
            self._finish_register(transaction, request, source, self._clock(), device_id, password)

        task = asyncio.get_running_loop().create_task(look_up())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _challenge(
        self,
        transaction: ServerTransaction | None,
        request: SipRequest,
        source: Address,
        now: float,
        *,
        stale: bool = False,
    ) -> None:
        challenge = self._auth.challenge(time.time(), stale=stale)
        self._respond(
            transaction,
            request,
            source,
            401,
            headers=[("WWW-Authenticate", challenge.to_header())],
        )

    def _finish_register(
        self,
        transaction: ServerTransaction | None,
        request: SipRequest,
        source: Address,
        now: float,
        device_id: str,
        password: str | None,
    ) -> None:
        if password is None:
            self.refused += 1
            log.info("GB/T 28181: %s may not register here (not in the register)", device_id)
            self._respond(transaction, request, source, 403, "device not allowed")
            return
        verdict = self._auth.verify(
            request.headers.get("Authorization"),
            method="REGISTER",
            now=time.time(),
            password_for=lambda _username: password,
        )
        if verdict.outcome is Outcome.STALE:
            self._challenge(transaction, request, source, now, stale=True)
            return
        if verdict.outcome in (Outcome.BAD_NONCE, Outcome.MALFORMED):
            self._challenge(transaction, request, source, now)
            return
        if not verdict.ok:
            self.refused += 1
            log.info("GB/T 28181: %s: %s", device_id, verdict.outcome.value)
            self._passwords.pop(device_id, None)  # the password may have just been changed
            self._respond(transaction, request, source, 403, "wrong password")
            return
        asked = request.registration_expires
        if self.redirect_to and asked != 0:
            # Only now, authenticated: a redirect must not tell anyone where the nodes are.
            # An unregistration (Expires: 0) is not redirected but answered 200 below: there
            # is no binding here to remove, which is done as asked; a device unregistering
            # (rebooting, shutting down) wants a 2xx and will not follow a 302 for it, and
            # one that took a 302 as a failure would only retry.
            self._redirect(transaction, request, source, device_id)
            return
        date = datetime.now(self._zone).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        if asked == 0:
            self._respond(transaction, request, source, 200, headers=[("Date", date)])
            gone = self.registrar.unregister(device_id)
            if gone is not None:
                self._went_offline(gone)
            return
        expires = self.registrar.clamp(asked)
        contact = request.headers.get("Contact") or ""
        self._respond(
            transaction,
            request,
            source,
            200,
            headers=[("Date", date), ("Expires", str(expires)), ("X-GB-Ver", GB_VERSION)]
            + ([("Contact", contact)] if contact else []),
        )
        self.registrations += 1
        came = self.registrar.register(
            device_id,
            source,
            contact,
            expires,
            now,
            version=_clip(request.headers.get("X-GB-Ver"), 16),
            user_agent=_clip(request.headers.get("User-Agent"), 128),
            call_id=_clip(request.call_id, 128),
        )
        if came.restarted:
            log.info("GB/T 28181: %s restarted (registered anew while registered)", device_id)
        self._came_online(came)

    def _redirect(
        self,
        transaction: ServerTransaction | None,
        request: SipRequest,
        source: Address,
        device_id: str,
    ) -> None:
        """302 with the device's access node; nothing is registered, stored or asked here."""
        node = choose_node(device_id, self.redirect_to)
        self._respond(
            transaction,
            request,
            source,
            MOVED,
            headers=[("Contact", redirect_contact(device_id, node))],
        )
        self.redirected += 1
        if device_id not in self._redirected_once:
            self._redirected_once.add(device_id)
            log.info("GB/T 28181: %s redirected to access node %s", device_id, node)

    def _came_online(self, came: Online) -> None:
        self._store_online(came.device_id, came.address, came.renewed)
        if not came.renewed:
            # Learn what it is and what it has, as soon as it is here.
            for asked in (
                self.query(
                    came.device_id,
                    manscdp.DeviceInfoQuery(device_id=came.device_id, sn=self.next_sn()),
                ),
                self.refresh_catalog(came.device_id),
            ):
                asked.add_done_callback(_unanswered)
            self._presence(came.device_id, True)

    def _presence(self, device_id: str, online: bool) -> None:
        for listener in list(self.presence_listeners):
            try:
                listener(device_id, online)
            except Exception:
                log.exception("GB/T 28181: a presence listener failed on %s", device_id)

    def refresh_catalog(self, device_id: str) -> asyncio.Future[SipResponse]:
        sn = self.next_sn()
        self._catalogs[(device_id, sn)] = _Catalog(
            manscdp.CatalogAssembly(device_id, sn), self._clock()
        )
        return self.query(device_id, manscdp.CatalogQuery(device_id=device_id, sn=sn))

    def _went_offline(self, gone: Offline) -> None:
        log.info("GB/T 28181: %s offline: %s", gone.device_id, gone.reason)
        directory = self._directory
        self._spawn(gone.device_id, lambda: directory.offline(gone.device_id, gone.reason))
        self._presence(gone.device_id, False)

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
        device_id = getattr(msg, "device_id", None) or _device_id(request)
        sender = _device_id(request) or device_id
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


GB_VERSION = "3.0"  # X-GB-Ver the platform answers with: it speaks GB/T 28181-2022

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


def _device_id(request: SipRequest) -> str | None:
    """The device's 20-digit ID from From (devices put it in the user part)."""
    try:
        user = request.from_.uri.user
    except ParseError:
        return None
    if user and len(user) == 20 and user.isdigit():
        return user
    return None


def _clip(value: str | None, length: int) -> str | None:
    return value[:length] if value else None
