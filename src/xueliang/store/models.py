"""ORM models. Every schema change comes with an Alembic migration in ``migrations/versions``.

Integer surrogate keys (``pk``) stay inside the store; the API addresses organisations by their
administrative code and devices and channels by their 20-digit GB/T 28181 ID, as this field does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use UTC-aware datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Org(Base):
    """A node of the organisation tree: province … village, grid, or a virtual organisation."""

    __tablename__ = "orgs"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    level: Mapped[str] = mapped_column(String(16))
    parent_pk: Mapped[int | None] = mapped_column(ForeignKey("orgs.pk"), index=True)
    # Materialised path of surrogate keys, "/1/7/42/": a subtree is one indexed prefix match.
    path: Mapped[str] = mapped_column(String(512), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)

    parent: Mapped[Org | None] = relationship(remote_side=[pk])


class Device(Base):
    __tablename__ = "devices"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    gb_id: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    protocol: Mapped[str] = mapped_column(String(16), index=True)
    url: Mapped[str | None] = mapped_column(String(1024))
    username: Mapped[str | None] = mapped_column(String(128))
    # Encrypted with the data directory's secret key: ingest needs the plain password back.
    password_enc: Mapped[str | None] = mapped_column(Text)
    transport: Mapped[str] = mapped_column(String(8), default="tcp")
    # GB/T 28181 only: how the device is asked to send media (udp, tcp-passive, tcp-active);
    # None: the platform's [gb28181] media_transport.
    media_transport: Mapped[str | None] = mapped_column(String(16))
    manufacturer: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(64))
    firmware: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    port: Mapped[int | None] = mapped_column(Integer)
    org_pk: Mapped[int | None] = mapped_column(ForeignKey("orgs.pk"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="offline", index=True)
    status_reason: Mapped[str | None] = mapped_column(String(256))
    status_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now, onupdate=_now)

    org: Mapped[Org | None] = relationship()
    channels: Mapped[list[Channel]] = relationship(
        back_populates="device", cascade="all, delete-orphan", passive_deletes=True
    )


class Channel(Base):
    """One camera view (点位)."""

    __tablename__ = "channels"
    __table_args__ = (Index("ix_channels_org_grid", "org_pk", "grid_pk"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    gb_id: Mapped[str] = mapped_column(String(20), unique=True)
    device_pk: Mapped[int] = mapped_column(ForeignKey("devices.pk", ondelete="CASCADE"), index=True)
    # The ID the device itself uses for this channel, when it differs from ours.
    remote_id: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128), index=True)
    longitude: Mapped[float | None] = mapped_column(Float)
    latitude: Mapped[float | None] = mapped_column(Float)
    direction: Mapped[int | None] = mapped_column(Integer)
    address: Mapped[str | None] = mapped_column(String(256))
    point_class: Mapped[int] = mapped_column(Integer, default=3)
    ptz_type: Mapped[str] = mapped_column(String(16), default="fixed")
    stream_url: Mapped[str | None] = mapped_column(String(1024))
    # Unplaced channels (a new GB device's catalogue) have no organisation yet: only users
    # scoped to everything see them until an operator places them.
    org_pk: Mapped[int | None] = mapped_column(ForeignKey("orgs.pk"))
    grid_pk: Mapped[int | None] = mapped_column(ForeignKey("orgs.pk"))
    status: Mapped[str] = mapped_column(String(16), default="offline", index=True)
    status_reason: Mapped[str | None] = mapped_column(String(256))
    status_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now, onupdate=_now)
    # Days this channel's recordings are kept; None: the platform's default (media.retention_days).
    retention_days: Mapped[int | None] = mapped_column(Integer)
    # When the recorder writes (xueliang.media.recording_plans); None: continuously.
    recording_plan: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Where the channel hangs in its GB/T 28181 device's own catalogue tree (a CatalogNode's
    # node_id: business group, virtual organisation or region); None: at the device's root.
    catalog_parent: Mapped[str | None] = mapped_column(String(64))

    device: Mapped[Device] = relationship(back_populates="channels")
    org: Mapped[Org | None] = relationship(foreign_keys=[org_pk])
    grid: Mapped[Org | None] = relationship(foreign_keys=[grid_pk])


class Role(Base):
    __tablename__ = "roles"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(128))
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    permissions: Mapped[list[str]] = mapped_column(JSON, default=list)


class UserRole(Base):
    __tablename__ = "user_roles"

    user_pk: Mapped[int] = mapped_column(
        ForeignKey("users.pk", ondelete="CASCADE"), primary_key=True
    )
    role_pk: Mapped[int] = mapped_column(
        ForeignKey("roles.pk", ondelete="CASCADE"), primary_key=True
    )


class UserScope(Base):
    """Where a user's permissions apply: everything, an organisation subtree, or one channel."""

    __tablename__ = "user_scopes"
    __table_args__ = (UniqueConstraint("user_pk", "kind", "org_pk", "channel_pk"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_pk: Mapped[int] = mapped_column(ForeignKey("users.pk", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    org_pk: Mapped[int | None] = mapped_column(ForeignKey("orgs.pk", ondelete="CASCADE"))
    channel_pk: Mapped[int | None] = mapped_column(ForeignKey("channels.pk", ondelete="CASCADE"))

    org: Mapped[Org | None] = relationship()
    channel: Mapped[Channel | None] = relationship()


class User(Base):
    __tablename__ = "users"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128), default="")
    password_hash: Mapped[str] = mapped_column(String(256))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)

    roles: Mapped[list[Role]] = relationship(secondary="user_roles", order_by=Role.name)
    scopes: Mapped[list[UserScope]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by=UserScope.pk
    )


class Token(Base):
    """A bearer credential: a login session or a machine's API key. Only its hash is stored."""

    __tablename__ = "tokens"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_pk: Mapped[int] = mapped_column(ForeignKey("users.pk", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(128), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()


class AuditRecord(Base):
    """One append-only audit record, HMAC-chained to the one before it."""

    __tablename__ = "audit_records"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(128), default="", index=True)
    outcome: Mapped[str] = mapped_column(String(16), default="ok")
    source: Mapped[str] = mapped_column(String(64), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's current end; one row, locked by each append so appends serialise."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class Segment(Base):
    """One recorded file: a key-frame-aligned fragmented MP4 of one channel."""

    __tablename__ = "segments"
    __table_args__ = (
        Index("ix_segments_channel_start", "channel_pk", "start"),
        # Oldest first overall (quota) and per tier (moves to the next tier).
        Index("ix_segments_start", "start"),
        Index("ix_segments_tier_start", "tier", "start"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel_pk: Mapped[int] = mapped_column(ForeignKey("channels.pk", ondelete="CASCADE"))
    start: Mapped[datetime] = mapped_column(UTCDateTime)
    end: Mapped[datetime] = mapped_column(UTCDateTime)
    bytes: Mapped[int] = mapped_column(BigInteger)
    codec: Mapped[str] = mapped_column(String(16))
    # Relative to the root of its storage tier, so a data directory can move.
    path: Mapped[str] = mapped_column(String(512), unique=True)
    frames: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    # Index into the configured storage tiers (0: where the recorder writes).
    tier: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Hold(Base):
    """A legal hold: a channel's recordings overlapping [start, end) are never deleted while it
    is active. Released holds are kept, with who released them and when."""

    __tablename__ = "holds"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel_pk: Mapped[int] = mapped_column(
        ForeignKey("channels.pk", ondelete="CASCADE"), index=True
    )
    start: Mapped[datetime] = mapped_column(UTCDateTime)
    end: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    released_by: Mapped[str | None] = mapped_column(String(64))


class Export(Base):
    """An evidence export: one channel's range remuxed into one MP4 file under DATA/exports.

    The channel is kept by its GB ID, not by a foreign key: the evidence outlives the camera."""

    __tablename__ = "exports"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel_id: Mapped[str] = mapped_column(String(20), index=True)
    start: Mapped[datetime] = mapped_column(UTCDateTime)
    end: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(Text)
    # Relative to the exports directory.
    file: Mapped[str] = mapped_column(String(256), unique=True)
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))  # empty until the file is finished
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    # "platform": remuxed from the platform's recordings; "device": downloaded from a GB/T
    # 28181 device's own recording (a job: running, then done, partial or failed).
    source: Mapped[str] = mapped_column(String(16), default="platform", server_default="platform")
    status: Mapped[str] = mapped_column(String(16), default="done", server_default="done")
    progress: Mapped[float] = mapped_column(Float, default=1.0, server_default="1")
    error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Event(Base):
    """Something that happened at a camera or device: a GB/T 28181 alarm today, analytics
    later. Kept by the channel's and device's IDs, not by foreign keys: an event outlives the
    camera it came from, and one from a device (not a channel) names no channel."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_channel_occurred", "channel_id", "occurred_at"),
        Index("ix_events_occurred", "occurred_at"),
        Index("ix_events_kind_occurred", "kind", "occurred_at"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # "gb.alarm", "analytics.intrusion", …
    channel_id: Mapped[str | None] = mapped_column(String(20))
    device_id: Mapped[str | None] = mapped_column(String(20))
    priority: Mapped[int | None] = mapped_column(Integer)  # 1 highest .. 4
    method: Mapped[str | None] = mapped_column(String(16))  # GB AlarmMethod, a detector's name
    type: Mapped[str | None] = mapped_column(String(32))  # GB AlarmType, a rule's type
    description: Mapped[str | None] = mapped_column(String(512))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_now)
    longitude: Mapped[float | None] = mapped_column(Float)
    latitude: Mapped[float | None] = mapped_column(Float)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Position(Base):
    """One point of a moving source's track (GB/T 28181 MobilePosition)."""

    __tablename__ = "positions"
    __table_args__ = (
        Index("ix_positions_channel_at", "channel_id", "at"),
        Index("ix_positions_at", "at"),  # retention deletes by age across channels
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel_id: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    longitude: Mapped[float] = mapped_column(Float)
    latitude: Mapped[float] = mapped_column(Float)
    speed: Mapped[float | None] = mapped_column(Float)  # km/h
    direction: Mapped[float | None] = mapped_column(Float)  # degrees from north
    altitude: Mapped[float | None] = mapped_column(Float)  # metres


class CatalogNode(Base):
    """A group in a GB/T 28181 device's own catalogue: a business group (type 215), a virtual
    organisation (216) or an administrative region (a 2-8 digit civil code). Lower platforms
    and NVRs arrange their channels in such a tree; it is kept as the device sent it, beside
    the platform's own organisation tree, so operators can browse a lower level as it sees
    itself."""

    __tablename__ = "catalog_nodes"
    __table_args__ = (UniqueConstraint("device_pk", "node_id"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_pk: Mapped[int] = mapped_column(ForeignKey("devices.pk", ondelete="CASCADE"), index=True)
    node_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))  # business_group, virtual_org, region
    parent_id: Mapped[str | None] = mapped_column(String(64))
