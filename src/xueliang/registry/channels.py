"""Channels (点位): one camera view each, placed in an organisation and optionally a grid."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, aliased

from xueliang.access.audit import AuditLog
from xueliang.access.permissions import Permission
from xueliang.access.principal import Principal
from xueliang.core.clock import Clock
from xueliang.core.errors import Conflict, InvalidInput
from xueliang.core.events import Signal, announces
from xueliang.core.gbcode import CHANNEL_TYPE
from xueliang.registry.common import (
    IdAllocator,
    IdPolicy,
    check_grid,
    org_by_code,
    refuse_if_held,
    require_org_in_scope,
    split_credentials,
    visible_channel,
    visible_device,
)
from xueliang.registry.schemas import PTZ_CAPABLE, ChannelCreate, ChannelUpdate, ChannelView
from xueliang.store.db import Database
from xueliang.store.models import Channel, Device, Org
from xueliang.store.paging import page_rows

_OrgA = aliased(Org)
_GridA = aliased(Org)


def channel_view(
    c: Channel, device_id: str, org_code: str | None, grid_code: str | None
) -> ChannelView:
    return ChannelView(
        id=c.gb_id,
        device_id=device_id,
        remote_id=c.remote_id,
        name=c.name,
        longitude=c.longitude,
        latitude=c.latitude,
        direction=c.direction,
        address=c.address,
        point_class=c.point_class,
        ptz_type=c.ptz_type,
        ptz=c.ptz_type in PTZ_CAPABLE,
        stream_url=c.stream_url,
        org=org_code,
        grid=grid_code,
        status=c.status,
        status_reason=c.status_reason,
        status_since=c.status_since,
        enabled=c.enabled,
        retention_days=c.retention_days,
        created_at=c.created_at,
        updated_at=c.updated_at,
    )


def _select() -> Select[Channel, str, str, str]:
    """A channel with the codes of its device, organisation and grid, as views show them."""
    return (
        select(Channel, Device.gb_id, _OrgA.code, _GridA.code)
        .join(Device, Channel.device_pk == Device.pk)
        .outerjoin(_OrgA, Channel.org_pk == _OrgA.pk)
        .outerjoin(_GridA, Channel.grid_pk == _GridA.pk)
    )


class ChannelService:
    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        clock: Clock,
        ids: IdPolicy,
        *,
        changed: Signal | None = None,
    ) -> None:
        self.changed = changed
        self._db = db
        self._audit = audit
        self._clock = clock
        self._ids = ids

    def list(
        self,
        principal: Principal,
        *,
        org: str | None = None,
        device: str | None = None,
        status: str | None = None,
        point_class: int | None = None,
        q: str | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> tuple[list[ChannelView], int]:
        principal.require(Permission.REGISTRY_READ)
        stmt = _select().where(principal.scope.channel_filter())
        if org is not None:
            root = select(Org.path).where(Org.code == org).scalar_subquery()
            subtree = select(Org.pk).where(Org.path.startswith(root))
            stmt = stmt.where(Channel.org_pk.in_(subtree) | Channel.grid_pk.in_(subtree))
        if device is not None:
            stmt = stmt.where(Device.gb_id == device)
        if status is not None:
            stmt = stmt.where(Channel.status == status)
        if point_class is not None:
            stmt = stmt.where(Channel.point_class == point_class)
        if q:
            stmt = stmt.where(
                Channel.name.contains(q, autoescape=True)
                | Channel.gb_id.startswith(q, autoescape=True)
                | Channel.address.contains(q, autoescape=True)
            )
        with self._db.read() as s:
            rows, total = page_rows(s, stmt.order_by(Channel.gb_id), offset=offset, limit=limit)
            return [channel_view(*row) for row in rows], total

    def _view(self, s: Session, channel: Channel) -> ChannelView:
        s.flush()
        row = s.execute(_select().where(Channel.pk == channel.pk)).one()
        return channel_view(*row)

    def get(self, principal: Principal, gb_id: str) -> ChannelView:
        principal.require(Permission.REGISTRY_READ)
        with self._db.read() as s:
            return self._view(s, visible_channel(s, principal, gb_id))

    @announces
    def create(self, principal: Principal, spec: ChannelCreate) -> ChannelView:
        principal.require(Permission.REGISTRY_WRITE)
        with self._db.transaction() as s:
            device = visible_device(s, principal, spec.device)
            org = org_by_code(s, spec.org) if spec.org else device.org
            require_org_in_scope(principal, org)
            grid = check_grid(s, spec.grid, org)
            if spec.id is not None:
                if s.scalar(select(Channel.pk).where(Channel.gb_id == spec.id)) is not None:
                    raise Conflict(f"channel {spec.id} already exists")
                gb_id = spec.id
            else:
                gb_id = IdAllocator(s, self._ids).next(CHANNEL_TYPE, Channel)
            stream_url, _, _ = split_credentials(spec.stream_url)
            channel = Channel(
                gb_id=gb_id,
                device_pk=device.pk,
                remote_id=spec.remote_id,
                name=spec.name,
                longitude=spec.longitude,
                latitude=spec.latitude,
                direction=spec.direction,
                address=spec.address,
                point_class=spec.point_class,
                ptz_type=spec.ptz_type,
                stream_url=stream_url,
                org_pk=org.pk if org else None,
                grid_pk=grid.pk if grid else None,
                status="offline",
                status_reason="not yet connected",
                status_since=self._clock.now(),
            )
            s.add(channel)
            detail = spec.model_dump(exclude_none=True)
            if stream_url is not None:
                detail["stream_url"] = stream_url
            self._audit.append(
                s, principal, "channel.create", target=f"channel:{gb_id}", detail=detail
            )
            return self._view(s, channel)

    @announces
    def update(self, principal: Principal, gb_id: str, spec: ChannelUpdate) -> ChannelView:
        principal.require(Permission.REGISTRY_WRITE)
        with self._db.transaction() as s:
            channel = visible_channel(s, principal, gb_id)
            require_org_in_scope(principal, channel.org)
            changes = spec.model_dump(exclude_unset=True)
            org = channel.org
            if "org" in changes:
                org = org_by_code(s, spec.org) if spec.org else None
                require_org_in_scope(principal, org)
                channel.org_pk = org.pk if org else None
            if "grid" in changes or "org" in changes:
                grid_code = (
                    spec.grid
                    if "grid" in changes
                    else (channel.grid.code if channel.grid else None)
                )
                grid = check_grid(s, grid_code, org)
                channel.grid_pk = grid.pk if grid else None
            for field in (
                "name",
                "remote_id",
                "longitude",
                "latitude",
                "direction",
                "address",
                "point_class",
                "ptz_type",
                "stream_url",
                "enabled",
                "retention_days",
            ):
                if field in changes:
                    if (
                        field in ("name", "point_class", "ptz_type", "enabled")
                        and changes[field] is None
                    ):
                        raise InvalidInput(f"{field} cannot be empty")
                    setattr(channel, field, changes[field])
            if changes.get("stream_url"):
                # Credentials belong to the device, sealed; never stored in a channel's URL.
                channel.stream_url = changes["stream_url"] = split_credentials(spec.stream_url)[0]
            detail = dict(changes)
            self._audit.append(
                s, principal, "channel.update", target=f"channel:{gb_id}", detail=detail
            )
            return self._view(s, channel)

    @announces
    def delete(self, principal: Principal, gb_id: str) -> None:
        principal.require(Permission.REGISTRY_WRITE)
        with self._db.transaction() as s:
            channel = visible_channel(s, principal, gb_id)
            require_org_in_scope(principal, channel.org)
            refuse_if_held(s, [channel.pk], f"channel {gb_id}")
            s.delete(channel)
            self._audit.append(s, principal, "channel.delete", target=f"channel:{gb_id}")

    def set_status(self, gb_id: str, status: str, reason: str | None, at: datetime) -> None:
        """Record a status change reported by the media plane or the SIP server."""
        with self._db.transaction() as s:
            channel = s.scalar(select(Channel).where(Channel.gb_id == gb_id))
            if channel is None or (channel.status == status and channel.status_reason == reason):
                return
            channel.status, channel.status_reason, channel.status_since = status, reason, at
