"""Who is registered, where they are reachable, and who has gone quiet: pure state, time passed in.

A device is online from a successful REGISTER until it unregisters, its registration expires,
or it misses ``keepalive_missed`` keepalives in a row. Its address is where its packets really
came from (received/rport), not what its Contact claims: behind NAT only that address reaches
it. Expiry is checked by ``expire(now)``, which the server calls on a timer; the soonest
deadline is kept in a heap, so ten thousand devices cost a heap operation per keepalive, not a
scan.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Literal

Transport = Literal["udp", "tcp"]


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int
    transport: Transport = "udp"


@dataclass(slots=True)
class Registration:
    device_id: str
    address: Address
    contact: str
    expires_at: float
    registered_at: float
    last_seen: float
    keepalives: int = 0
    version: str | None = None  # X-GB-Ver: None or 2.0 for 2016 devices, 3.0 for 2022 ones
    user_agent: str | None = None
    # A UA keeps its REGISTER Call-ID while it runs (RFC 3261 10.2): a new one while the
    # registration is live means the device restarted (its dialogs and subscriptions are gone).
    call_id: str | None = None
    restarts: int = 0
    # Where the deadline heap believes this registration ends (lazy deletion).
    deadline: float = field(default=0.0)


@dataclass(frozen=True, slots=True)
class Online:
    device_id: str
    address: Address
    renewed: bool  # a refresh of a live registration, not a new arrival
    restarted: bool = False  # registered again under a new Call-ID while still registered


@dataclass(frozen=True, slots=True)
class Offline:
    device_id: str
    reason: str


class Registrar:
    def __init__(
        self,
        *,
        keepalive_seconds: float = 60.0,
        keepalive_missed: int = 3,
        min_expires: int = 60,
        max_expires: int = 86400,
    ) -> None:
        self.keepalive_seconds = keepalive_seconds
        self.keepalive_missed = keepalive_missed
        self.min_expires = min_expires
        self.max_expires = max_expires
        self._devices: dict[str, Registration] = {}
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._devices)

    def __contains__(self, device_id: object) -> bool:
        return device_id in self._devices

    def get(self, device_id: str) -> Registration | None:
        return self._devices.get(device_id)

    def clamp(self, expires: int | None) -> int:
        """The lifetime granted for a requested one (None: the device asked for nothing)."""
        if expires is None:
            return 3600
        return max(self.min_expires, min(self.max_expires, expires))

    def register(
        self,
        device_id: str,
        address: Address,
        contact: str,
        expires: int,
        now: float,
        *,
        version: str | None = None,
        user_agent: str | None = None,
        call_id: str | None = None,
    ) -> Online:
        """A REGISTER accepted. A device that registers again under a new Call-ID while its
        registration is live restarted: it is not renewed (the platform asks it everything
        again and subscribes anew) but it never goes offline in between."""
        reg = self._devices.get(device_id)
        renewed = reg is not None
        restarted = False
        if reg is None:
            reg = self._devices[device_id] = Registration(
                device_id, address, contact, now + expires, now, now
            )
        elif call_id is not None and reg.call_id is not None and call_id != reg.call_id:
            restarted, renewed = True, False
            reg.registered_at, reg.keepalives = now, 0
            reg.restarts += 1
        reg.version, reg.user_agent = version, user_agent
        reg.call_id = call_id if call_id is not None else reg.call_id
        reg.address, reg.contact, reg.expires_at, reg.last_seen = (
            address,
            contact,
            now + expires,
            now,
        )
        self._schedule(reg)
        return Online(device_id, address, renewed, restarted)

    def unregister(self, device_id: str) -> Offline | None:
        if self._devices.pop(device_id, None) is None:
            return None
        return Offline(device_id, "unregistered")

    def seen(self, device_id: str, address: Address, now: float, *, keepalive: bool) -> bool:
        """A keepalive (or any request) from a registered device; False when it is not
        registered (the device must register again: answer it so).

        A NAT binding may move the port, and the address is followed; a message claiming the
        device from another host (or transport) is not believed, since anyone can write a
        device's ID into a keepalive: it is refused, and a device whose address really
        changed registers again, with its password, from the new one."""
        reg = self._devices.get(device_id)
        if reg is None:
            return False
        if address.host != reg.address.host or address.transport != reg.address.transport:
            return False
        reg.last_seen = now
        reg.address = address  # a NAT binding may have moved
        if keepalive:
            reg.keepalives += 1
        self._schedule(reg)
        return True

    def _deadline(self, reg: Registration) -> float:
        silent = reg.last_seen + self.keepalive_seconds * self.keepalive_missed
        return min(reg.expires_at, silent)

    def _schedule(self, reg: Registration) -> None:
        reg.deadline = self._deadline(reg)
        heapq.heappush(self._heap, (reg.deadline, reg.device_id))

    @property
    def next_deadline(self) -> float | None:
        while self._heap:
            deadline, device_id = self._heap[0]
            reg = self._devices.get(device_id)
            if reg is not None and reg.deadline == deadline:
                return deadline
            heapq.heappop(self._heap)
        return None

    def expire(self, now: float) -> list[Offline]:
        gone: list[Offline] = []
        while self._heap and self._heap[0][0] <= now:
            deadline, device_id = heapq.heappop(self._heap)
            reg = self._devices.get(device_id)
            if reg is None or reg.deadline != deadline:
                continue  # superseded by a later keepalive or registration
            del self._devices[device_id]
            if reg.expires_at <= now:
                reason = "registration expired"
            else:
                missed = self.keepalive_missed
                reason = f"no keepalive for {now - reg.last_seen:.0f} s ({missed} missed)"
            gone.append(Offline(device_id, reason))
        return gone
