"""What GB/T 28181 notifications become on the platform: alarms are events, positions are
tracks, catalogue changes are register changes. Every method blocks on the database (the SIP
server calls them in its worker lanes, one device's in order).

Devices name the channel an alarm or a position is about by their own ID for it; the register
may know the channel under another (``remote_id``, when the device's ID was taken): both are
tried. A position sent under the device's own ID is the channel's when the device has one
channel (a body camera, a vehicle unit). Device times are local wall time (the platform's
timezone) unless they carry a zone.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from xueliang.core.clock import Clock
from xueliang.events.service import EventService, NewEvent, NewPosition
from xueliang.gb28181 import manscdp
from xueliang.gb28181.directory import GbDirectory
from xueliang.store.db import Database
from xueliang.store.models import Channel, Device

log = logging.getLogger(__name__)

ALARM_KIND = "gb.alarm"


class GbNotifications:
    def __init__(
        self,
        db: Database,
        directory: GbDirectory,
        events: EventService,
        clock: Clock,
        *,
        timezone: str = "Asia/Shanghai",
    ) -> None:
        self._db = db
        self._directory = directory
        self._events = events
        self._clock = clock
        self._zone = ZoneInfo(timezone)

    def _time(self, value: datetime | None) -> datetime:
        if value is None:
            return self._clock.now()
        if value.tzinfo is None:
            value = value.replace(tzinfo=self._zone)
        try:
            return value.astimezone(UTC)
        except (OverflowError, ValueError):  # a device's clock at year 1 or 9999
            return self._clock.now()

    def _channel(self, s: Session, device_id: str, named: str, *, sole: bool) -> str | None:
        """The register's ID of the device's channel ``named``; with ``sole``, the device's
        only channel when it names itself."""
        device_pk = s.scalar(select(Device.pk).where(Device.gb_id == device_id))
        if device_pk is None:
            return None
        found = s.scalar(
            select(Channel.gb_id).where(
                Channel.device_pk == device_pk,
                or_(
                    Channel.remote_id == named,
                    (Channel.gb_id == named) & Channel.remote_id.is_(None),
                ),
            )
        )
        if found is not None or not sole or named not in ("", device_id):
            return found
        only = s.scalars(select(Channel.gb_id).where(Channel.device_pk == device_pk).limit(2))
        ids = list(only)
        return ids[0] if len(ids) == 1 else None

    def alarm(self, device_id: str, alarm: manscdp.Alarm) -> None:
        named = alarm.device_id or device_id
        with self._db.read() as s:
            channel = self._channel(s, device_id, named, sole=False)
        detail: dict[str, object] = {"reported_id": named, "sn": alarm.sn}
        if alarm.event_type is not None:
            detail["event_type"] = alarm.event_type
        if alarm.extra:
            detail["extra"] = dict(alarm.extra)
        self._events.record(
            NewEvent(
                kind=ALARM_KIND,
                occurred_at=self._time(alarm.alarm_time),
                channel_id=channel,
                device_id=device_id,
                priority=alarm.alarm_priority,
                method=alarm.alarm_method,
                type=str(alarm.alarm_type) if alarm.alarm_type is not None else None,
                description=alarm.alarm_description,
                longitude=alarm.longitude,
                latitude=alarm.latitude,
                detail=detail,
            )
        )
        log.info(
            "GB/T 28181: alarm from %s on %s (priority %s, method %s)",
            device_id,
            channel or named,
            alarm.alarm_priority,
            alarm.alarm_method,
        )

    def positions(self, device_id: str, message: manscdp.MobilePosition) -> None:
        by_channel: dict[str, list[NewPosition]] = {}
        with self._db.read() as s:
            resolved: dict[str, str | None] = {}
            for p in message.positions:
                if p.longitude is None or p.latitude is None:
                    continue
                named = p.device_id or message.device_id or device_id
                if named not in resolved:
                    resolved[named] = self._channel(s, device_id, named, sole=True)
                channel = resolved[named]
                if channel is None:
                    continue
                by_channel.setdefault(channel, []).append(
                    NewPosition(
                        at=self._time(p.time),
                        longitude=p.longitude,
                        latitude=p.latitude,
                        speed=p.speed,
                        direction=p.direction,
                        altitude=p.altitude,
                    )
                )
        for channel, points in by_channel.items():
            self._events.record_positions(channel, points)

    def catalog_changes(self, device_id: str, items: list[manscdp.CatalogItem]) -> None:
        self._directory.catalog_changes(device_id, items)
