"""What the GB/T 28181 server keeps in the register: devices that join, their status, what
they say they are (DeviceInfo) and their channels (Catalog).

Every method blocks on the database; the SIP server calls them from worker threads. A device
that authenticates but is not in the register is added (``auto_add``), in no area, audited as
the system's act, so an administrator sees it and places it; its channels keep the device's
own IDs where those are free (the ID the device knows stays in ``remote_id`` otherwise).
A catalogue only adds and updates: a channel missing from one answer (a page lost on UDP) is
never deleted; removing channels is an administrator's decision.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select, update

from xueliang.access.audit import AuditLog
from xueliang.access.principal import SYSTEM
from xueliang.core.clock import Clock
from xueliang.core.events import Signal
from xueliang.core.secretbox import SecretBox
from xueliang.gb28181 import manscdp
from xueliang.gb28181.registrar import Address
from xueliang.registry.common import IdAllocator, IdPolicy
from xueliang.store.db import Database
from xueliang.store.models import Channel, Device

log = logging.getLogger(__name__)

# Info/PTZType in a catalogue item -> the register's ptz_type.
PTZ_TYPES = {1: "dome", 2: "half_dome", 3: "fixed", 4: "remote_fixed"}
# Digits 11-13 of an ID that name devices rather than channels (a NVR lists itself sometimes).
DEVICE_TYPES = {"111", "112", "113", "114", "115", "116", "117", "118", "200"}
KIND_BY_TYPE = {"111": "dvr", "113": "encoder", "118": "nvr", "131": "camera", "132": "ipc"}


def _clip(value: str | None, n: int) -> str | None:
    return value.strip()[:n] or None if value else None


class GbDirectory:
    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        secrets: SecretBox,
        clock: Clock,
        ids: IdPolicy,
        *,
        password: str,
        auto_add: bool = True,
        changed: Signal | None = None,
    ) -> None:
        self._db = db
        self._audit = audit
        self._secrets = secrets
        self._clock = clock
        self._ids = ids
        self._password = password
        self._auto_add = auto_add
        self._changed = changed

    def _now(self) -> datetime:
        return self._clock.now()

    def password_for(self, device_id: str) -> str | None:
        with self._db.read() as s:
            device = s.scalar(select(Device).where(Device.gb_id == device_id))
            if device is None:
                return self._password if self._auto_add else None
            if device.protocol != "gb28181" or not device.enabled:
                return None
            if device.password_enc:
                return self._secrets.open(device.password_enc)
            return self._password

    def online(self, device_id: str, address: Address, renewed: bool) -> None:
        now = self._now()
        with self._db.transaction() as s:
            device = s.scalar(select(Device).where(Device.gb_id == device_id))
            if device is None:
                device = Device(
                    gb_id=device_id,
                    name=device_id,
                    kind=KIND_BY_TYPE.get(device_id[10:13], "ipc"),
                    protocol="gb28181",
                    transport=address.transport,
                    status="offline",
                )
                s.add(device)
                self._audit.append(
                    s,
                    SYSTEM,
                    "device.create",
                    target=f"device:{device_id}",
                    detail={"via": "gb28181 registration", "address": address.host},
                )
            device.ip, device.port, device.transport = address.host, address.port, address.transport
            if device.status != "online":
                device.status, device.status_reason, device.status_since = "online", None, now

    def offline(self, device_id: str, reason: str) -> None:
        now = self._now()
        with self._db.transaction() as s:
            device = s.scalar(select(Device).where(Device.gb_id == device_id))
            if device is None:
                return
            device.status, device.status_reason, device.status_since = "offline", reason, now
            s.execute(
                update(Channel)
                .where(Channel.device_pk == device.pk, Channel.status != "offline")
                .values(status="offline", status_reason=f"device offline: {reason}"[:256],
                        status_since=now)
            )  # fmt: skip

    def device_info(self, device_id: str, info: manscdp.DeviceInfo) -> None:
        with self._db.transaction() as s:
            device = s.scalar(select(Device).where(Device.gb_id == device_id))
            if device is None:
                return
            device.manufacturer = _clip(info.manufacturer, 64) or device.manufacturer
            device.model = _clip(info.model, 64) or device.model
            device.firmware = _clip(info.firmware, 64) or device.firmware
            name = _clip(info.device_name, 128)
            if name and device.name == device_id:
                device.name = name  # only a name nobody chose yet

    def keepalive(self, device_id: str, info: manscdp.Keepalive) -> None:
        """Channels a keepalive reports faulty go offline with that reason."""
        if not info.faulty_device_ids:
            return
        now = self._now()
        with self._db.transaction() as s:
            s.execute(
                update(Channel)
                .where(Channel.gb_id.in_(info.faulty_device_ids))
                .values(status="offline", status_reason="reported faulty by the device",
                        status_since=now)
            )  # fmt: skip

    def catalog(self, device_id: str, items: list[manscdp.CatalogItem], complete: bool) -> None:
        now = self._now()
        added = 0
        with self._db.transaction() as s:
            device = s.scalar(select(Device).where(Device.gb_id == device_id))
            if device is None:
                return
            mine = {
                (c.remote_id or c.gb_id): c
                for c in s.scalars(select(Channel).where(Channel.device_pk == device.pk))
            }
            ids = IdAllocator(s, self._ids)
            for item in items:
                if (
                    item.device_id == device_id
                    or item.is_business_group
                    or item.is_virtual_organisation
                    or item.type_code in DEVICE_TYPES
                ):
                    continue
                channel = mine.get(item.device_id)
                status = "online" if item.online is not False else "offline"
                reason = None if status == "online" else "reported offline by the device"
                if channel is None:
                    taken = s.scalar(select(Channel.pk).where(Channel.gb_id == item.device_id))
                    own = len(item.device_id) == 20 and item.device_id.isdigit() and taken is None
                    gb_id = item.device_id if own else ids.next("131", Channel)
                    channel = Channel(
                        gb_id=gb_id,
                        device_pk=device.pk,
                        remote_id=None if own else item.device_id[:64],
                        name=_clip(item.name, 128) or item.device_id,
                        org_pk=device.org_pk,
                        status=status,
                        status_reason=reason,
                        status_since=now,
                        # The device keeps its recordings (played back from it); the
                        # platform records a GB channel once an operator sets a plan.
                        recording_plan={"mode": "off"},
                    )
                    s.add(channel)
                    mine[item.device_id] = channel
                    added += 1
                else:
                    channel.name = _clip(item.name, 128) or channel.name
                    if channel.status != status:
                        channel.status, channel.status_reason = status, reason
                        channel.status_since = now
                lon, lat = item.longitude, item.latitude
                if lon is not None and lat is not None and abs(lon) <= 180 and abs(lat) <= 90:
                    channel.longitude, channel.latitude = lon, lat
                if item.ptz_type in PTZ_TYPES:
                    channel.ptz_type = PTZ_TYPES[item.ptz_type]
                if item.address:
                    channel.address = _clip(item.address, 256)
            if added:
                self._audit.append(
                    s,
                    SYSTEM,
                    "channel.import",
                    target=f"device:{device_id}",
                    detail={"via": "gb28181 catalog", "added": added, "complete": complete},
                )
        log.info(
            "GB/T 28181: catalogue of %s: %d items, %d new channels%s",
            device_id,
            len(items),
            added,
            "" if complete else " (partial)",
        )
