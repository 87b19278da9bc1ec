"""Devices: cameras, NVRs, encoders and lower platforms, with their access protocol."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ScalarSelect, Select, func, select
from sqlalchemy.orm import Session, selectinload

from xueliang.access.audit import AuditLog
from xueliang.access.permissions import Permission
from xueliang.access.principal import Principal
from xueliang.core.clock import Clock
from xueliang.core.errors import Conflict, InvalidInput, PermissionDenied
from xueliang.core.events import Signal, announces
from xueliang.core.gbcode import CHANNEL_TYPE, DEVICE_KIND_TYPE
from xueliang.core.secretbox import SecretBox
from xueliang.registry.common import (
    IdAllocator,
    IdPolicy,
    org_by_code,
    refuse_if_held,
    require_org_in_scope,
    split_credentials,
    strip_credentials,
    visible_device,
)
from xueliang.registry.schemas import DeviceCreate, DeviceUpdate, DeviceView, PtzType
from xueliang.store.db import Database
from xueliang.store.models import Channel, Device, Org
from xueliang.store.paging import page_rows

# Protocols whose device is one stream: registering it creates its single channel at once.
SINGLE_STREAM = frozenset({"rtsp", "push", "sim"})
GB28181 = "gb28181"


@dataclass(frozen=True, slots=True)
class NewChannel:
    """A channel created together with its device (what the device itself reported)."""

    name: str
    remote_id: str | None = None
    stream_url: str | None = None
    ptz_type: PtzType = "fixed"


def device_view(d: Device, channel_count: int) -> DeviceView:
    return DeviceView(
        id=d.gb_id,
        name=d.name,
        kind=d.kind,
        protocol=d.protocol,
        url=strip_credentials(d.url),
        username=d.username,
        has_password=d.password_enc is not None,
        transport=d.transport,
        media_transport=d.media_transport,
        manufacturer=d.manufacturer,
        model=d.model,
        firmware=d.firmware,
        ip=d.ip,
        port=d.port,
        org=d.org.code if d.org else None,
        status=d.status,
        status_reason=d.status_reason,
        status_since=d.status_since,
        enabled=d.enabled,
        channel_count=channel_count,
        created_at=d.created_at,
        updated_at=d.updated_at,
    )


def _visible_channel_count(principal: Principal) -> ScalarSelect[int]:
    """Channels of the device that the caller may see: the count reveals nothing beyond its area."""
    return (
        select(func.count(Channel.pk))
        .where(Channel.device_pk == Device.pk, principal.scope.channel_filter())
        .correlate(Device)
        .scalar_subquery()
    )


class DeviceService:
    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        clock: Clock,
        secrets: SecretBox,
        ids: IdPolicy,
        *,
        changed: Signal | None = None,
    ) -> None:
        self.changed = changed
        self._db = db
        self._audit = audit
        self._clock = clock
        self._secrets = secrets
        self._ids = ids

    def _query(self, principal: Principal) -> Select[Device, int]:
        return (
            select(Device, _visible_channel_count(principal))
            .where(principal.scope.device_filter())
            .options(selectinload(Device.org))
        )

    def list(
        self,
        principal: Principal,
        *,
        org: str | None = None,
        protocol: str | None = None,
        status: str | None = None,
        q: str | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> tuple[list[DeviceView], int]:
        principal.require(Permission.REGISTRY_READ)
        stmt = self._query(principal)
        if org is not None:
            # The subtree of the organisation, narrowed further by the caller's own scope above.
            subtree = select(Org.pk).where(
                Org.path.startswith(select(Org.path).where(Org.code == org).scalar_subquery())
            )
            stmt = stmt.where(Device.org_pk.in_(subtree))
        if protocol is not None:
            stmt = stmt.where(Device.protocol == protocol)
        if status is not None:
            stmt = stmt.where(Device.status == status)
        if q:
            stmt = stmt.where(
                Device.name.contains(q, autoescape=True)
                | Device.gb_id.startswith(q, autoescape=True)
            )
        with self._db.read() as s:
            rows, total = page_rows(s, stmt.order_by(Device.gb_id), offset=offset, limit=limit)
            return [device_view(d, n) for d, n in rows], total

    def get(self, principal: Principal, gb_id: str) -> DeviceView:
        principal.require(Permission.REGISTRY_READ)
        with self._db.read() as s:
            device = visible_device(s, principal, gb_id)
            return self._view(s, device, principal)

    @staticmethod
    def _view(s: Session, device: Device, principal: Principal) -> DeviceView:
        s.flush()
        count = s.scalar(
            select(func.count())
            .select_from(Channel)
            .where(Channel.device_pk == device.pk, principal.scope.channel_filter())
        )
        return device_view(device, count or 0)

    def credentials(self, device: Device) -> tuple[str | None, str | None]:
        """Username and plain password for ingest (never shown through the API)."""
        password = self._secrets.open(device.password_enc) if device.password_enc else None
        return device.username, password

    @announces
    def create(
        self,
        principal: Principal,
        spec: DeviceCreate,
        channels: Sequence[NewChannel] | None = None,
    ) -> DeviceView:
        """Register a device. ``channels``, when given, are created with it in the same
        transaction (an ONVIF device's profiles) instead of a one-stream device's channel."""
        principal.require(Permission.REGISTRY_WRITE)
        if spec.protocol in ("rtsp", "onvif", "sim") and not spec.url:
            raise InvalidInput(f"a {spec.protocol} device needs a url")
        if spec.media_transport is not None:
            _require_gb(spec.protocol)
        url, url_user, url_password = split_credentials(spec.url)
        username = spec.username or url_user
        password = spec.password if spec.password is not None else url_password
        with self._db.transaction() as s:
            org = org_by_code(s, spec.org) if spec.org else None
            require_org_in_scope(principal, org)
            ids = IdAllocator(s, self._ids)
            if spec.id is not None:
                if s.scalar(select(Device.pk).where(Device.gb_id == spec.id)) is not None:
                    raise Conflict(f"device {spec.id} already exists")
                gb_id = spec.id
            else:
                gb_id = ids.next(DEVICE_KIND_TYPE.get(spec.kind, "132"), Device)
            device = Device(
                gb_id=gb_id,
                name=spec.name,
                kind=spec.kind,
                protocol=spec.protocol,
                url=url,
                username=username,
                password_enc=self._secrets.seal(password) if password else None,
                transport=spec.transport,
                media_transport=spec.media_transport,
                manufacturer=spec.manufacturer,
                model=spec.model,
                firmware=spec.firmware,
                ip=spec.ip,
                port=spec.port,
                org=org,
                status="offline",
                status_reason="not yet connected",
                status_since=self._clock.now(),
            )
            s.add(device)
            s.flush()
            if channels is None and spec.protocol in SINGLE_STREAM:
                s.add(
                    Channel(
                        gb_id=ids.next(CHANNEL_TYPE, Channel),
                        device_pk=device.pk,
                        name=spec.channel_name or spec.name,
                        org_pk=org.pk if org else None,
                        status="offline",
                        status_reason="not yet connected",
                        status_since=self._clock.now(),
                    )
                )
            self._audit.append(
                s,
                principal,
                "device.create",
                target=f"device:{gb_id}",
                detail=_redacted(spec.model_dump(exclude_none=True)),
            )
            for new in channels or ():
                self._add_channel(s, principal, ids, device, org, new)
            return self._view(s, device, principal)

    def _add_channel(
        self,
        s: Session,
        principal: Principal,
        ids: IdAllocator,
        device: Device,
        org: Org | None,
        new: NewChannel,
    ) -> None:
        stream_url, _, _ = split_credentials(new.stream_url)
        gb_id = ids.next(CHANNEL_TYPE, Channel)
        s.add(
            Channel(
                gb_id=gb_id,
                device_pk=device.pk,
                remote_id=new.remote_id,
                name=new.name,
                ptz_type=new.ptz_type,
                stream_url=stream_url,
                org_pk=org.pk if org else None,
                status="offline",
                status_reason="not yet connected",
                status_since=self._clock.now(),
            )
        )
        detail = {
            "device": device.gb_id,
            "name": new.name,
            "remote_id": new.remote_id,
            "stream_url": stream_url,
            "ptz_type": new.ptz_type,
        }
        self._audit.append(
            s,
            principal,
            "channel.create",
            target=f"channel:{gb_id}",
            detail={k: v for k, v in detail.items() if v is not None},
        )

    @announces
    def update(self, principal: Principal, gb_id: str, spec: DeviceUpdate) -> DeviceView:
        principal.require(Permission.REGISTRY_WRITE)
        with self._db.transaction() as s:
            device = visible_device(s, principal, gb_id)
            require_org_in_scope(principal, device.org)
            changes = spec.model_dump(exclude_unset=True)
            if "org" in changes:
                org = org_by_code(s, spec.org) if spec.org else None
                require_org_in_scope(principal, org)
                device.org = org
            if "url" in changes:
                url, url_user, url_password = split_credentials(spec.url)
                device.url = url
                if url_user is not None and "username" not in changes:
                    device.username = url_user
                if url_password is not None and "password" not in changes:
                    device.password_enc = self._secrets.seal(url_password)
            if changes.get("media_transport") is not None:
                _require_gb(device.protocol)
            if "password" in changes:
                device.password_enc = self._secrets.seal(spec.password) if spec.password else None
            for field in (
                "name",
                "username",
                "transport",
                "media_transport",
                "manufacturer",
                "model",
                "ip",
                "port",
                "enabled",
            ):
                if field in changes:
                    if field in ("name", "transport", "enabled") and changes[field] is None:
                        raise InvalidInput(f"{field} cannot be empty")
                    setattr(device, field, changes[field])
            self._audit.append(
                s, principal, "device.update", target=f"device:{gb_id}", detail=_redacted(changes)
            )
            return self._view(s, device, principal)

    @announces
    def delete(self, principal: Principal, gb_id: str) -> None:
        principal.require(Permission.REGISTRY_WRITE)
        with self._db.transaction() as s:
            device = visible_device(s, principal, gb_id)
            require_org_in_scope(principal, device.org)
            outside = s.scalar(
                select(func.count())
                .select_from(Channel)
                .where(Channel.device_pk == device.pk, ~principal.scope.channel_filter())
            )
            if outside:
                raise PermissionDenied(f"device {gb_id} has {outside} channel(s) outside your area")
            channel_pks = list(s.scalars(select(Channel.pk).where(Channel.device_pk == device.pk)))
            refuse_if_held(s, channel_pks, f"device {gb_id}")
            s.delete(device)
            self._audit.append(s, principal, "device.delete", target=f"device:{gb_id}")


def _require_gb(protocol: str) -> None:
    """A media transport is a GB/T 28181 device's setting (how it is INVITEd to send media)."""
    if protocol != GB28181:
        raise InvalidInput(
            f"media_transport applies to gb28181 devices only, not to a {protocol} device"
        )


def _redacted(values: dict[str, Any]) -> dict[str, Any]:
    out = dict(values)
    if out.get("password") is not None:
        out["password"] = "***"  # noqa: S105
    if out.get("url"):
        out["url"] = strip_credentials(out["url"])
    return out
