"""The GB/T 28181 role of the platform: the SIP server and the register behind it, built from
the ``[gb28181]`` settings and started with the platform."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from xueliang.access.audit import AuditLog
from xueliang.config import Settings
from xueliang.core.aio import on_loop
from xueliang.core.clock import Clock
from xueliang.core.events import Signal
from xueliang.core.secretbox import SecretBox
from xueliang.events.service import EventService
from xueliang.gb28181 import manscdp
from xueliang.gb28181.config import DeviceConfigService
from xueliang.gb28181.directory import GbDirectory
from xueliang.gb28181.downloads import GbDownloads
from xueliang.gb28181.notifications import GbNotifications
from xueliang.gb28181.registrar import Registrar
from xueliang.gb28181.routes import ChannelRoutes
from xueliang.gb28181.server import GbServer
from xueliang.gb28181.snapshots import DeviceSnapshots
from xueliang.gb28181.streams import GbStreams
from xueliang.gb28181.subscriptions import TOPIC_SETTINGS, GbSubscriptions
from xueliang.media.export import ExportService
from xueliang.media.rtp_ports import RtpPortAllocator
from xueliang.media.service import MediaService
from xueliang.registry.common import IdPolicy
from xueliang.store.db import Database

log = logging.getLogger(__name__)


class GbService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        audit: AuditLog,
        secrets: SecretBox,
        clock: Clock,
        ids: IdPolicy,
        media: MediaService,
        *,
        password: str,
        changed: Signal | None = None,
        events: EventService | None = None,
        exports: ExportService | None = None,
        snapshots_root: Path | None = None,
    ) -> None:
        cfg = settings.gb28181
        centre = settings.registry.centre_code
        self.platform_id = cfg.platform_id(centre)
        self.domain = cfg.platform_domain(centre)
        self.directory = GbDirectory(
            db,
            audit,
            secrets,
            clock,
            ids,
            password=cfg.password or password,
            auto_add=cfg.auto_add,
            changed=changed,
        )
        self._settings = settings
        self._lanes = 1 if db.is_sqlite else 4
        self.server: GbServer | None = None
        self.loop: asyncio.AbstractEventLoop | None = None  # the SIP server's, once started
        self.routes = ChannelRoutes(
            db, timezone=settings.media.timezone, transport=cfg.media_transport
        )
        if changed is not None:
            changed.connect(self.routes.invalidate)
        self.streams = GbStreams(
            lambda: self.server,
            media,
            self.routes.route,
            RtpPortAllocator(cfg.rtp_port_min, cfg.rtp_port_max, host=cfg.host),
            bind_host=cfg.host,
            sdp_ip=cfg.sdp_ip,
            recorded=self.routes.recorded,
            idle_seconds=cfg.stream_idle_seconds,
            invite_timeout=cfg.invite_timeout,
            media_timeout=cfg.media_timeout,
        )

        # DeviceConfig (2022), and snapshots devices take and upload on command.
        self.configs = DeviceConfigService(db, audit, lambda: self.server, lambda: self.loop)
        self.snapshots = DeviceSnapshots(
            db,
            audit,
            snapshots_root if snapshots_root is not None else Path("device-snapshots"),
            self.configs,
            lambda: self.server,
            self.routes.route,
        )

        # Device recordings downloaded into evidence exports (jobs with progress).
        self.downloads = GbDownloads(self.streams, media, exports) if exports is not None else None

        # Catalogue, alarm and position subscriptions; what they bring is stored as events,
        # tracks and register changes.
        self.events = events if events is not None else EventService(db, clock)
        self.subscriptions = GbSubscriptions(
            lambda: self.server,
            GbNotifications(
                db, self.directory, self.events, clock, timezone=settings.media.timezone
            ),
        )

    async def start(self) -> None:
        cfg = self._settings.gb28181
        if self.server is not None:
            return
        self.server = GbServer(
            self.directory,
            platform_id=self.platform_id,
            domain=self.domain,
            host=cfg.host,
            port=cfg.port,
            registrar=Registrar(
                keepalive_seconds=cfg.keepalive_seconds,
                keepalive_missed=cfg.keepalive_missed,
                min_expires=cfg.min_expires,
                max_expires=cfg.max_expires,
            ),
            timezone=self._settings.media.timezone,
            lanes=self._lanes,
            redirect_to=cfg.redirect_to,
        )
        await self.server.start()
        self.loop = asyncio.get_running_loop()
        self.streams.start()
        if self.downloads is not None:
            self.downloads.start()
        subscriptions = self.subscriptions
        subscriptions.topics = tuple(TOPIC_SETTINGS[name] for name in dict.fromkeys(cfg.subscribe))
        subscriptions.expires, subscriptions.interval = cfg.subscribe_expires, cfg.position_interval
        subscriptions.start()

    async def ask(self, device_id: str, message: manscdp.Message) -> manscdp.Message:
        """``GbServer.ask`` from any event loop (the HTTP side may run on another): the
        device's answering MESSAGE. LookupError when the server is not running or the device
        is not registered; TimeoutError when it does not answer."""
        server, loop = self.server, self.loop
        if server is None or loop is None:
            raise LookupError("the GB/T 28181 server is not running")
        return await on_loop(loop, server.ask(device_id, message))

    async def stop(self) -> None:
        if self.server is not None:
            await self.subscriptions.stop()
            if self.downloads is not None:
                await self.downloads.stop()
            await self.streams.stop()
        server, self.server = self.server, None
        self.loop = None
        if server is not None:
            await server.stop()
