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

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from xueliang.access.audit import AuditLog
from xueliang.access.principal import SYSTEM
from xueliang.core.clock import Clock
from xueliang.core.events import Signal
from xueliang.core.secretbox import SecretBox
from xueliang.gb28181 import manscdp
from xueliang.gb28181.registrar import Address
from xueliang.registry.common import IdAllocator, IdPolicy
from xueliang.store.db import Database
from xueliang.store.models import CatalogNode, Channel, Device, Hold

log = logging.getLogger(__name__)

# Info/PTZType in a catalogue item -> the register's ptz_type.
PTZ_TYPES = {1: "dome", 2: "half_dome", 3: "fixed", 4: "remote_fixed"}
# Digits 11-13 of an ID that name devices rather than channels (a NVR lists itself sometimes).
DEVICE_TYPES = {"111", "112", "113", "114", "115", "116", "117", "118", "200"}
KIND_BY_TYPE = {"111": "dvr", "113": "encoder", "118": "nvr", "131": "camera", "132": "ipc"}
# Catalogue notify Events (GB/T 28181 A.2.5) that set a channel's status, with the reason.
STATUS_EVENTS: dict[str, tuple[str, str | None]] = {
    "ON": ("online", None),
    "OFF": ("offline", "reported offline by the device"),
    "VLOST": ("offline", "video lost (reported by the device)"),
    "DEFECT": ("offline", "faulty (reported by the device)"),
}


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
        self.online_many([(device_id, address, renewed)])

    def online_many(self, arrivals: list[tuple[str, Address, bool]]) -> None:
        """``online`` for many devices in one transaction (a registration storm: one
        transaction a device cost more than the rest of its registration together)."""
        if not arrivals:
            return
        now = self._now()
        with self._db.transaction() as s:
            ids = list(dict.fromkeys(device_id for device_id, _, _ in arrivals))
            known: dict[str, Device] = {}
            for chunk in _chunks(ids, 500):
                known.update(
                    (d.gb_id, d) for d in s.scalars(select(Device).where(Device.gb_id.in_(chunk)))
                )
            for device_id, address, _renewed in arrivals:
                self._online(s, known, device_id, address, now)

    def _online(
        self, s: Session, known: dict[str, Device], device_id: str, address: Address, now: datetime
    ) -> None:
        device = known.get(device_id)
        if device is None:
            device = known[device_id] = Device(
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

    def _store_tree(
        self,
        s: Session,
        device: Device,
        groups: dict[str, tuple[manscdp.CatalogItem, str]],
        complete: bool,
    ) -> None:
        """The device's own grouping (business groups, virtual organisations, regions), as it
        sent it; a complete catalogue also removes groups it no longer has."""
        nodes = {
            n.node_id: n
            for n in s.scalars(select(CatalogNode).where(CatalogNode.device_pk == device.pk))
        }
        for node_id, (item, kind) in groups.items():
            node = nodes.get(node_id)
            if node is None:
                node = CatalogNode(device_pk=device.pk, node_id=node_id, name=node_id, kind=kind)
                s.add(node)
                nodes[node_id] = node
            node.name = _clip(item.name, 128) or node_id
            node.kind = kind
            node.parent_id = _parent_of(item, device.gb_id)
        if complete:
            for node_id, node in nodes.items():
                if node_id not in groups:
                    s.delete(node)

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
            # IDs other devices' channels hold already: one query for the whole catalogue (a
            # query per new channel flushed the one before it: ~0.6 ms a channel), and the
            # loop below adds the IDs it hands out, so that none is handed out twice.
            wanted = {item.device_id for item in items if item.device_id not in mine}
            taken_ids: set[str] = set()
            for chunk in _chunks(sorted(wanted), 500):
                taken_ids.update(s.scalars(select(Channel.gb_id).where(Channel.gb_id.in_(chunk))))
            groups: dict[str, tuple[manscdp.CatalogItem, str]] = {}
            for item in items:
                kind = _node_kind(item)
                if kind is not None and item.device_id != device_id:
                    groups[item.device_id[:64]] = (item, kind)
                    continue
                if item.device_id == device_id or item.type_code in DEVICE_TYPES:
                    continue
                channel = mine.get(item.device_id)
                status = "online" if item.online is not False else "offline"
                reason = None if status == "online" else "reported offline by the device"
                if channel is None:
                    taken = item.device_id in taken_ids
                    own = len(item.device_id) == 20 and item.device_id.isdigit() and not taken
                    if own:
                        gb_id = item.device_id
                        ids.reserve(gb_id)  # (not flushed yet: the allocator must skip it)
                    else:
                        gb_id = ids.next("131", Channel)
                    taken_ids.add(gb_id)
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
                channel.catalog_parent = _parent_of(item, device_id)
            self._store_tree(s, device, groups, complete)
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

    def catalog_changes(self, device_id: str, items: list[manscdp.CatalogItem]) -> None:
        """A catalogue notify of changes: ADD and UPDATE add and update as a catalogue does,
        DEL removes the channel (an explicit removal, unlike a channel missing from a
        catalogue; one under a legal hold stays, offline), ON/OFF/VLOST/DEFECT set its status."""
        upserts: list[manscdp.CatalogItem] = []
        removals: list[str] = []
        statuses: list[tuple[str, str, str | None]] = []
        for item in items:
            event = (item.event or "").strip().upper()
            if event == "DEL":
                removals.append(item.device_id)
            elif event in STATUS_EVENTS:
                statuses.append((item.device_id, *STATUS_EVENTS[event]))
            else:  # ADD, UPDATE, and what a device may invent: never lose the item
                upserts.append(item)
        if upserts:
            self.catalog(device_id, upserts, complete=False)
        if not removals and not statuses:
            return
        now = self._now()
        removed = 0
        with self._db.transaction() as s:
            device = s.scalar(select(Device).where(Device.gb_id == device_id))
            if device is None:
                return
            mine = {
                (c.remote_id or c.gb_id): c
                for c in s.scalars(select(Channel).where(Channel.device_pk == device.pk))
            }
            for named, status, reason in statuses:
                channel = mine.get(named)
                if channel is not None and (channel.status, channel.status_reason) != (
                    status,
                    reason,
                ):
                    channel.status, channel.status_reason = status, reason
                    channel.status_since = now
            for named in removals:
                channel = mine.pop(named, None)
                if channel is None:
                    continue
                held = s.scalar(
                    select(func.count())
                    .select_from(Hold)
                    .where(Hold.channel_pk == channel.pk, Hold.released_at.is_(None))
                )
                if held:
                    channel.status, channel.status_since = "offline", now
                    channel.status_reason = "removed by the device (kept: legal hold)"
                    continue
                s.delete(channel)
                removed += 1
                self._audit.append(
                    s,
                    SYSTEM,
                    "channel.delete",
                    target=f"channel:{channel.gb_id}",
                    detail={"via": "gb28181 catalog notify", "device": device_id},
                )
        if removed:
            log.info("GB/T 28181: %s removed %d channel(s) from its catalogue", device_id, removed)
            if self._changed is not None:
                self._changed.emit()


def _chunks(values: list[str], size: int) -> list[list[str]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def _node_kind(item: manscdp.CatalogItem) -> str | None:
    """What kind of group an item is, or None for a channel (or a device inside)."""
    if item.is_business_group:
        return "business_group"
    if item.is_virtual_organisation:
        return "virtual_org"
    code = item.device_id
    if code.isdigit() and len(code) in (2, 4, 6, 8):
        return "region"  # an administrative division (civil code) of a lower platform
    return None


def _parent_of(item: manscdp.CatalogItem, device_id: str) -> str | None:
    """The group an item hangs under: the last of its ParentID path (2016 devices may send
    ``a/b/c``), else its business group; the device itself means the root."""
    parents = [p for p in (item.parent_id or "").replace("\\", "/").split("/") if p.strip()]
    parent = parents[-1].strip() if parents else None
    if (parent is None or parent == device_id) and item.business_group_id:
        parent = item.business_group_id.strip()
    if not parent or parent == device_id:
        return None
    return parent[:64]
