"""REGISTER on the platform's SIP server: digest challenge and verification, refreshes, restart
detection, unregistration and expiry, the 302 of a cluster's front, and the register's writes
(devices coming online stored in batches, on lanes of worker threads).

Behaviour where devices differ from the textbook (see gb28181-interop.md):
- a device's digest username need not be its ID (only the password counts), its realm need not
  be ours, and its nonce may be reused until it expires (then ``stale=true``, not a loop);
- a device that registers again under a new Call-ID while registered restarted: it is asked
  everything again, and its presence listeners hear it arrive, but it never goes offline;
- as the front of a cluster (``redirect_to``), a REGISTER that authenticates is answered 302
  with the access node the device belongs on (redirect.py), and the device is not registered
  here; one that does not authenticate learns no node.

``RegistrarEndpoint`` is the SIP endpoint that does this, on the registrar's pure state
(registrar.py); the server (server.py) builds on it with everything else a device sends.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from xueliang.gb28181.endpoint import SipEndpoint
from xueliang.gb28181.errors import ParseError
from xueliang.gb28181.redirect import MOVED, Node, choose_node, parse_nodes, redirect_contact
from xueliang.gb28181.registrar import Address, Offline, Online, Registrar
from xueliang.gb28181.sip import DigestAuthenticator, ServerTransaction, SipRequest
from xueliang.gb28181.sip.digest import Outcome

if TYPE_CHECKING:
    from xueliang.gb28181.server import Directory

# The server's logger, as before this module was split from server.py.
log = logging.getLogger("xueliang.gb28181.server")

# Threads writing to the register (one device's writes always on the same one); SQLite takes
# one writer at a time, so there one lane (more only wait on its lock, and time out).
LANES = 4
ARRIVALS_BATCH = 500  # devices coming online stored in one transaction at most

GB_VERSION = "3.0"  # X-GB-Ver the platform answers with: it speaks GB/T 28181-2022


class RegistrarEndpoint(SipEndpoint):
    """A SIP endpoint that registers devices and keeps the register's writes in order."""

    def __init__(
        self,
        directory: Directory,
        *,
        domain: str,
        host: str,
        port: int,
        registrar: Registrar | None,
        timezone: str,
        clock: Callable[[], float],
        lanes: int,
        redirect_to: Sequence[str],
    ) -> None:
        super().__init__(host, port, clock=clock)
        self.domain = domain
        self.registrar = registrar if registrar is not None else Registrar()  # (empty is falsy)
        self._directory = directory
        self._zone = ZoneInfo(timezone)
        self._auth = DigestAuthenticator(domain)
        self._tasks: set[asyncio.Task[None]] = set()
        self._lanes = [
            ThreadPoolExecutor(1, thread_name_prefix=f"gb-db-{i}") for i in range(max(1, lanes))
        ]
        # Per lane: the devices coming online not yet stored, in a batch whose job is queued
        # on the lane and not started (None: none open); guarded by _arrivals_lock.
        self._arrivals: list[list[tuple[str, Address, bool]] | None] = [None] * len(self._lanes)
        self._arrivals_lock = threading.Lock()
        self._passwords: dict[str, tuple[float, str | None]] = {}
        # Devices arriving (True: a new registration, not a refresh) and leaving (False), for
        # the subscriptions (subscriptions.py); called on the event loop.
        self.presence_listeners: list[Callable[[str, bool], None]] = []
        self.registrations = 0
        self.refused = 0
        # The front of a cluster: authenticated devices are sent on to these access nodes.
        self.redirect_to: tuple[Node, ...] = parse_nodes(redirect_to)
        self.redirected = 0
        self._redirected_once: set[str] = set()  # devices whose redirect was logged

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await super().stop()
        for lane in self._lanes:  # what was received is stored before the platform stops
            await asyncio.to_thread(lane.shutdown, wait=True)

    def _tick(self, now: float) -> None:
        super()._tick(now)
        for gone in self.registrar.expire(now):
            self._went_offline(gone)

    # --- the register's writes ---------------------------------------------------------------

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

    # --- REGISTER ----------------------------------------------------------------------------

    def _register(
        self,
        transaction: ServerTransaction | None,
        request: SipRequest,
        source: Address,
        now: float,
    ) -> None:
        device_id = device_id_of(request)
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
            self._arrived(came.device_id)
            self._presence(came.device_id, True)

    def _arrived(self, device_id: str) -> None:
        """A device registered anew, not a refresh: the server asks it what it is and has."""

    def _presence(self, device_id: str, online: bool) -> None:
        for listener in list(self.presence_listeners):
            try:
                listener(device_id, online)
            except Exception:
                log.exception("GB/T 28181: a presence listener failed on %s", device_id)

    def _went_offline(self, gone: Offline) -> None:
        log.info("GB/T 28181: %s offline: %s", gone.device_id, gone.reason)
        directory = self._directory
        self._spawn(gone.device_id, lambda: directory.offline(gone.device_id, gone.reason))
        self._presence(gone.device_id, False)


def device_id_of(request: SipRequest) -> str | None:
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
