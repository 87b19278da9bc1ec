"""The event store and the tracks of moving sources, independent of HTTP and of protocols.

Writers (the GB/T 28181 role, later analytics) call ``record`` and ``record_positions`` from
worker threads (they block on the database); readers list what their area scope covers: an
event of a channel is visible to whoever sees the channel, one that names no channel (a
device's own alarm) to whoever sees the device.
"""

from __future__ import annotations

import builtins
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, true

from xueliang.access.permissions import Permission
from xueliang.access.principal import Principal
from xueliang.core.clock import Clock, as_utc
from xueliang.core.errors import InvalidInput, PermissionDenied
from xueliang.events.schemas import EventView, TrackPoint
from xueliang.registry.common import visible_channel
from xueliang.store.db import Database
from xueliang.store.models import Channel, Device, Event, Position
from xueliang.store.paging import page_rows

log = logging.getLogger(__name__)

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


PRUNE_BATCH = 5000  # rows deleted per transaction: a long delete would hold writers up


@dataclass(frozen=True, slots=True)
class PruneReport:
    events: int
    positions: int


class EventService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        retention_days: int = 180,
        positions_retention_days: int = 30,
        sweep_seconds: float = 3600.0,
    ) -> None:
        self._db = db
        self._clock = clock
        self.retention_days = retention_days
        self.positions_retention_days = positions_retention_days
        self.sweep_seconds = sweep_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- retention -----------------------------------------------------------------------------

    def start(self) -> None:
        """Delete what is past retention now and then every ``sweep_seconds``."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="events-retention", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                report = self.prune()
                if report.events or report.positions:
                    log.info(
                        "events past retention deleted: %d events, %d track points",
                        report.events,
                        report.positions,
                    )
            except Exception:  # a failed sweep must not end the sweeping
                log.exception("events retention sweep failed")
            self._stop.wait(self.sweep_seconds)

    def prune(self) -> PruneReport:
        """Delete events that occurred more than ``retention_days`` ago and track points
        older than ``positions_retention_days``, in batches."""
        now = self._clock.now()
        events = self._delete_older(Event, Event.occurred_at, now - timedelta(self.retention_days))
        positions = self._delete_older(
            Position, Position.at, now - timedelta(self.positions_retention_days)
        )
        return PruneReport(events, positions)

    def _delete_older(
        self, model: type[Event] | type[Position], column: Any, cutoff: datetime
    ) -> int:
        total = 0
        while True:
            with self._db.transaction() as s:
                pks = list(s.scalars(select(model.pk).where(column < cutoff).limit(PRUNE_BATCH)))
                if pks:
                    s.execute(delete(model).where(model.pk.in_(pks)))
            total += len(pks)
            if len(pks) < PRUNE_BATCH or self._stop.is_set():
                return total  # done, or the platform stops (the next sweep goes on)

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
