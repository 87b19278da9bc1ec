"""Composition root: builds the services for one data directory and hands them out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from xueliang.access.audit import AuditLog
from xueliang.access.audit_service import AuditService
from xueliang.access.auth import AuthPolicy, AuthService
from xueliang.access.users import UserService
from xueliang.config import Settings, database_url, load_settings
from xueliang.core.clock import Clock, SystemClock
from xueliang.core.events import Signal
from xueliang.core.secretbox import SecretBox
from xueliang.datadir import DataDir
from xueliang.events.service import EventService
from xueliang.gb28181.control import DeviceControlService, GbControl, GbPtzDriver
from xueliang.gb28181.service import GbService
from xueliang.media.export import ExportService
from xueliang.media.holds import HoldService
from xueliang.media.live import LiveService
from xueliang.media.playback import PlaybackService
from xueliang.media.recording_plans import RecordingPlanService
from xueliang.media.segments import SegmentIndex
from xueliang.media.service import MediaService
from xueliang.media.snapshot import SnapshotService
from xueliang.media.storage import StorageManager
from xueliang.media.tiers import StoragePolicy, storage_tiers
from xueliang.ptz.service import PtzService, default_drivers
from xueliang.registry.channels import ChannelService
from xueliang.registry.common import IdPolicy
from xueliang.registry.coverage import CoverageService
from xueliang.registry.devices import DeviceService
from xueliang.registry.importer import RegisterIO
from xueliang.registry.orgs import OrgService
from xueliang.store import migrate
from xueliang.store.db import Database


@dataclass
class Platform:
    settings: Settings
    data: DataDir
    clock: Clock
    db: Database
    audit: AuditLog
    audit_records: AuditService
    users: UserService
    auth: AuthService
    orgs: OrgService
    devices: DeviceService
    channels: ChannelService
    coverage: CoverageService
    register: RegisterIO
    segments: SegmentIndex
    media: MediaService
    storage: StorageManager
    holds: HoldService
    live: LiveService
    playback: PlaybackService
    exports: ExportService
    snapshots: SnapshotService
    recording_plans: RecordingPlanService
    gb28181: GbService
    ptz: PtzService
    device_control: DeviceControlService
    registry_changed: Signal
    events: EventService

    def close(self) -> None:
        self.media.stop()
        self.storage.stop()
        self.db.dispose()


def build_platform(
    data_dir: Path,
    *,
    settings: Settings | None = None,
    clock: Clock | None = None,
    migrate_db: bool = True,
) -> Platform:
    data = DataDir(data_dir)
    data.require()
    settings = settings or load_settings(data.root)
    clock = clock or SystemClock()
    db = Database(database_url(settings, data.root), echo=settings.database.echo)
    if migrate_db:
        migrate.upgrade(db)
    audit = AuditLog(data.read_key("audit.key"), clock)
    secrets = SecretBox(data.read_key("secret.key"))
    ids = IdPolicy(
        centre_code=settings.registry.centre_code,
        industry_code=settings.registry.industry_code,
        network_code=settings.registry.network_code,
    )
    a = settings.auth
    policy = AuthPolicy(
        max_failed_logins=a.max_failed_logins,
        lockout_seconds=a.lockout_seconds,
        token_ttl_minutes=a.token_ttl_minutes,
        min_password_length=a.min_password_length,
    )
    users = UserService(db, audit, clock, min_password_length=a.min_password_length)
    with db.transaction() as s:
        users.ensure_builtin_roles(s)
    registry_changed = Signal("registry_changed")
    channels = ChannelService(db, audit, clock, ids, changed=registry_changed)
    data.recordings.mkdir(exist_ok=True)
    tiers = storage_tiers(settings.media, data.root, data.recordings)
    for tier in tiers:
        tier.root.mkdir(parents=True, exist_ok=True)
    segments = SegmentIndex(db, audit, [t.root for t in tiers], clock=clock)
    media = MediaService(
        db,
        secrets,
        channels,
        segments,
        recordings=tiers[0].root,
        segment_seconds=settings.media.segment_seconds,
        backoff_cap=settings.media.reconnect_max_seconds,
        channels_per_worker=settings.media.channels_per_worker,
        timezone=settings.media.timezone,
        live_host=(settings.media.live_host or settings.http.host)
        if settings.media.live_direct
        else "",
        live_port=settings.media.live_port,
        rtsp_client=settings.media.rtsp_client,
    )
    registry_changed.connect(media.on_registry_changed)
    storage = StorageManager(
        db, audit, clock, segments, tiers, StoragePolicy.from_config(settings.media)
    )

    # A media worker that died leaves its segments in progress unindexed: index what it wrote.
    def repair_lost(channel_ids: list[str]) -> None:
        storage.repair(channel_ids)

    media.on_worker_lost = repair_lost
    events = EventService(
        db,
        clock,
        retention_days=settings.events.retention_days,
        positions_retention_days=settings.events.positions_retention_days,
        sweep_seconds=settings.events.sweep_seconds,
    )
    exports = ExportService(db, audit, segments, data.root / "exports")
    gb = GbService(
        settings,
        db,
        audit,
        secrets,
        clock,
        ids,
        media,
        password=data.gb28181_password(),
        changed=registry_changed,
        events=events,
        exports=exports,
        snapshots_root=data.root / "device-snapshots",
    )
    gb_control = GbControl(lambda: gb.server, lambda: gb.loop)
    ptz_drivers = {**default_drivers(), "gb28181": GbPtzDriver(gb_control)}
    return Platform(
        settings=settings,
        data=data,
        clock=clock,
        db=db,
        audit=audit,
        audit_records=AuditService(db, audit),
        users=users,
        auth=AuthService(db, audit, clock, policy),
        orgs=OrgService(db, audit),
        devices=DeviceService(db, audit, clock, secrets, ids, changed=registry_changed),
        channels=channels,
        coverage=CoverageService(db),
        register=RegisterIO(db, audit, clock, secrets, ids, changed=registry_changed),
        segments=segments,
        media=media,
        storage=storage,
        holds=HoldService(db, audit, clock),
        live=LiveService(media),
        playback=PlaybackService(db, audit, segments),
        exports=exports,
        gb28181=gb,
        recording_plans=RecordingPlanService(
            db, audit, media, timezone=settings.media.timezone, changed=registry_changed
        ),
        snapshots=SnapshotService(db, audit, segments, media.latest_keyframe),
        ptz=PtzService(db, audit, channels, secrets, ptz_drivers),
        device_control=DeviceControlService(db, audit, gb_control),
        registry_changed=registry_changed,
        events=events,
    )
