"""What the register says of GB/T 28181 channels, for the stream side: which device serves a
channel, under which ID, and whether its recording plan records on the platform.

The set of recorded channels is asked for every few seconds (streams.py keeps their streams
up); it is read from the database only when the register changed (``invalidate``, connected to
the registry's change signal) or a minute has passed, not on every ask: a register of ten
thousand GB channels is not scanned every two seconds.

A channel's media transport is its device's (``Device.media_transport``, the operator's choice
for a device behind NAT, say) or, when the device has none, the platform's
(``[gb28181] media_transport``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy import select

from xueliang.gb28181.stream_session import MEDIA_TRANSPORTS, ChannelRoute, MediaTransport
from xueliang.media.recording_plans import plan_of
from xueliang.store.db import Database
from xueliang.store.models import Channel, Device

PROTOCOL = "gb28181"
RECORDED_TTL = 60.0


class ChannelRoutes:
    def __init__(
        self,
        db: Database,
        *,
        timezone: str,
        transport: MediaTransport,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._timezone = timezone
        self._transport = transport
        self._clock = clock
        self._lock = threading.Lock()
        self._recorded: list[ChannelRoute] | None = None
        self._read_at = 0.0

    def invalidate(self) -> None:
        """The register changed: the next ``recorded`` reads it again."""
        with self._lock:
            self._recorded = None

    def route(self, channel_id: str) -> ChannelRoute | None:
        """The route of an enabled GB channel of an enabled device; None otherwise."""
        with self._db.read() as s:
            row = s.execute(
                select(Channel, Device)
                .join(Device, Channel.device_pk == Device.pk)
                .where(
                    Channel.gb_id == channel_id,
                    Device.protocol == PROTOCOL,
                    Channel.enabled.is_(True),
                    Device.enabled.is_(True),
                )
            ).first()
            return None if row is None else self._route(row[0], row[1])

    def recorded(self) -> list[ChannelRoute]:
        """GB channels whose plan records on the platform (their stream is kept up)."""
        with self._lock:
            if self._recorded is not None and self._clock() - self._read_at < RECORDED_TTL:
                return self._recorded
        routes = self._read_recorded()
        with self._lock:
            self._recorded, self._read_at = routes, self._clock()
        return routes

    def _read_recorded(self) -> list[ChannelRoute]:
        with self._db.read() as s:
            rows = s.execute(
                select(Channel, Device)
                .join(Device, Channel.device_pk == Device.pk)
                .where(
                    Device.protocol == PROTOCOL,
                    Channel.enabled.is_(True),
                    Device.enabled.is_(True),
                )
            )
            routes = [self._route(channel, device) for channel, device in rows]
        return [r for r in routes if r.records]

    def _route(self, channel: Channel, device: Device) -> ChannelRoute:
        plan = plan_of(channel.recording_plan, self._timezone)
        return ChannelRoute(
            channel_id=channel.gb_id,
            device_id=device.gb_id,
            remote_id=channel.remote_id or channel.gb_id,
            transport=self._transport_of(device),
            plan=plan,
            records=plan.mode != "off",
        )

    def _transport_of(self, device: Device) -> MediaTransport:
        """The transport set for the device, or the platform's when none (or an unknown) is."""
        for transport in MEDIA_TRANSPORTS:
            if device.media_transport == transport:
                return transport
        return self._transport
