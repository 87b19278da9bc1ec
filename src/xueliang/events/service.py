"""The event store and the tracks of moving sources, independent of HTTP and of protocols.

Writers (the GB/T 28181 role, later analytics) call ``record`` and ``record_positions`` from
worker threads (they block on the database); readers list what their area scope covers: an
event of a channel is visible to whoever sees the channel, one that names no channel (a
device's own alarm) to whoever sees the device.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, true

from xueliang.access.permissions import Permission
from xueliang.access.principal import Principal
from xueliang.core.clock import Clock, as_utc
from xueliang.core.errors import InvalidInput, PermissionDenied
from xueliang.events.schemas import EventView, TrackPoint
from xueliang.registry.common import visible_channel
from xueliang.store.db import Database
from xueliang.store.models import Channel, Device, Event, Position
from xueliang.store.paging import page_rows

MAX_DESCRIPTION = 512


@dataclass(frozen=True, slots=True)
class NewEvent:
    kind: str
    occurred_at: datetime
    channel_id: str | None = None
    device_id: str | None = None
    priority: int | None = None
    method: str | None = None
    type: str | None = None
    description: str | None = None
    longitude: float | None = None
    latitude: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NewPosition:
    at: datetime
    longitude: float
    latitude: float
    speed: float | None = None
    direction: float | None = None
    altitude: float | None = None


def _clip(value: str | None, n: int) -> str | None:
    return value[:n] if value else None


def _coordinates(lon: float | None, lat: float | None) -> tuple[float | None, float | None]:
    if lon is None or lat is None or abs(lon) > 180 or abs(lat) > 90:
        return None, None
    return lon, lat


def _view(e: Event) -> EventView:
    return EventView(
        id=e.pk,
        kind=e.kind,
        channel_id=e.channel_id,
        device_id=e.device_id,
        priority=e.priority,
        method=e.method,
        type=e.type,
        description=e.description,
        occurred_at=e.occurred_at,
        received_at=e.received_at,
        longitude=e.longitude,
        latitude=e.latitude,
        detail=e.detail,
    )


class EventService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    # --- writing (worker threads) --------------------------------------------------------------

    def record(self, event: NewEvent) -> int:
        """Store one event; its ID."""
        lon, lat = _coordinates(event.longitude, event.latitude)
        row = Event(
            kind=event.kind[:32],
            channel_id=_clip(event.channel_id, 20),
            device_id=_clip(event.device_id, 20),
            priority=event.priority,
            method=_clip(event.method, 16),
            type=_clip(event.type, 32),
            description=_clip(event.description, MAX_DESCRIPTION),
            occurred_at=as_utc(event.occurred_at),
            received_at=self._clock.now(),
            longitude=lon,
            latitude=lat,
            detail=event.detail or None,
        )
        with self._db.transaction() as s:
            s.add(row)
            s.flush()
            return row.pk

    def record_positions(self, channel_id: str, points: Sequence[NewPosition]) -> int:
        """Store points of a channel's track (those with usable coordinates); the channel's
        own coordinates follow the newest point. How many were stored."""
        usable = [p for p in points if _coordinates(p.longitude, p.latitude)[0] is not None]
        if not usable:
            return 0
        with self._db.transaction() as s:
            latest = s.scalar(
                select(func.max(Position.at)).where(Position.channel_id == channel_id)
            )
            for p in usable:
                s.add(
                    Position(
                        channel_id=channel_id,
                        at=as_utc(p.at),
                        longitude=p.longitude,
                        latitude=p.latitude,
                        speed=p.speed,
                        direction=p.direction,
                        altitude=p.altitude,
                    )
                )
            newest = max(usable, key=lambda p: as_utc(p.at))
            if latest is None or as_utc(newest.at) >= as_utc(latest):
                channel = s.scalar(select(Channel).where(Channel.gb_id == channel_id))
                if channel is not None:
                    channel.longitude, channel.latitude = newest.longitude, newest.latitude
        return len(usable)

    # --- reading -------------------------------------------------------------------------------

    def list(
        self,
        principal: Principal,
        *,
        channel_id: str | None = None,
        kind: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[EventView], int]:
        """Events in the principal's area, newest first."""
        principal.require(Permission.REGISTRY_READ)
        stmt = select(Event).where(_visible(principal))
        if channel_id is not None:
            stmt = stmt.where(Event.channel_id == channel_id)
        if kind is not None:
            stmt = stmt.where(Event.kind == kind)
        if start is not None:
            stmt = stmt.where(Event.occurred_at >= _query_time(start))
        if end is not None:
            stmt = stmt.where(Event.occurred_at < _query_time(end))
        stmt = stmt.order_by(Event.occurred_at.desc(), Event.pk.desc())
        with self._db.read() as s:
            rows, total = page_rows(s, stmt, offset=offset, limit=limit)
            return [_view(row[0]) for row in rows], total

    def track(
        self,
        principal: Principal,
        channel_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        offset: int = 0,
        limit: int = 1000,
    ) -> tuple[builtins.list[TrackPoint], int]:
        """The channel's positions in [start, end), oldest first."""
        if not (principal.has(Permission.REGISTRY_READ) or principal.has(Permission.VIDEO_LIVE)):
            raise PermissionDenied(
                f"permission {Permission.REGISTRY_READ.value!r} or"
                f" {Permission.VIDEO_LIVE.value!r} is required"
            )
        stmt = select(Position).where(Position.channel_id == channel_id)
        if start is not None:
            stmt = stmt.where(Position.at >= _query_time(start))
        if end is not None:
            stmt = stmt.where(Position.at < _query_time(end))
        stmt = stmt.order_by(Position.at, Position.pk)
        with self._db.read() as s:
            visible_channel(s, principal, channel_id)
            rows, total = page_rows(s, stmt, offset=offset, limit=limit)
            return [
                TrackPoint(
                    at=p.at,
                    longitude=p.longitude,
                    latitude=p.latitude,
                    speed=p.speed,
                    direction=p.direction,
                    altitude=p.altitude,
                )
                for (p,) in rows
            ], total


def _query_time(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise InvalidInput("times must carry a zone (ISO 8601 with Z or an offset)")
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise InvalidInput(f"time out of range: {value.isoformat()}") from exc


def _visible(principal: Principal) -> ColumnElement[bool]:
    scope = principal.scope
    if scope.everything:
        return true()
    channels = select(Channel.gb_id).where(scope.channel_filter())
    devices = select(Device.gb_id).where(scope.device_filter())
    return or_(
        Event.channel_id.in_(channels),
        and_(Event.channel_id.is_(None), Event.device_id.in_(devices)),
    )
