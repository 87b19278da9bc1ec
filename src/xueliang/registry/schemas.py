"""Data classes at the registry boundary."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from xueliang.core.text import reject_nul

OrgLevel = Literal["province", "city", "county", "town", "village", "grid", "virtual"]
# Depth order for administrative levels; "virtual" (virtual organisation / business group) may
# sit anywhere.
LEVEL_DEPTH: dict[str, int] = {
    "province": 1,
    "city": 2,
    "county": 3,
    "town": 4,
    "village": 5,
    "grid": 6,
}
DeviceKind = Literal["ipc", "camera", "nvr", "dvr", "encoder", "platform"]
# "sim": the built-in camera simulator (demo, tests, benchmarks).
Protocol = Literal["rtsp", "onvif", "gb28181", "push", "sim"]
Transport = Literal["tcp", "udp"]
# How a GB/T 28181 device is asked to send media: udp; tcp-passive (the device connects to
# the platform); tcp-active (the platform connects to the device).
MediaTransport = Literal["udp", "tcp-passive", "tcp-active"]
MEDIA_TRANSPORT_DOC = (
    "GB/T 28181 devices only: udp, tcp-passive (the device connects to the platform) or "
    "tcp-active (the platform connects to the device); null: the platform default"
)
# GB/T 28181 PTZType: 1 dome, 2 half dome, 3 fixed bullet, 4 remote-controlled bullet.
PtzType = Literal["dome", "half_dome", "fixed", "remote_fixed", "unknown"]
PTZ_CAPABLE = frozenset({"dome", "half_dome", "remote_fixed"})
Status = Literal["online", "offline"]

OrgCode = Annotated[str, StringConstraints(pattern=r"^\d{2,20}$")]
GbIdStr = Annotated[str, StringConstraints(pattern=r"^\d{20}$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=128, strip_whitespace=True)]
Longitude = Annotated[float, Field(ge=-180, le=180)]
Latitude = Annotated[float, Field(ge=-90, le=90)]
Direction = Annotated[int, Field(ge=0, le=359, description="Degrees clockwise from north")]
PointClass = Annotated[
    int, Field(ge=1, le=3, description="1 public security, 2 key industry, 3 social")
]
Url = Annotated[str, StringConstraints(max_length=1024)]
RetentionDays = Annotated[int, Field(ge=1, le=36500)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # Every string field: PostgreSQL text cannot hold NUL (see xueliang.core.text).
        return reject_nul(value)


class OrgCreate(_In):
    code: OrgCode
    name: Name
    level: OrgLevel
    parent: OrgCode | None = None


class OrgUpdate(_In):
    name: Name | None = None
    parent: OrgCode | None = None


class OrgView(BaseModel):
    id: str = Field(description="Administrative code, also the organisation's ID in the API")
    name: str
    level: str
    parent: str | None
    created_at: datetime


class DeviceCreate(_In):
    id: GbIdStr | None = Field(default=None, description="20-digit GB ID; generated when absent")
    name: Name
    kind: DeviceKind = "ipc"
    protocol: Protocol
    url: Url | None = Field(default=None, description="Stream URL (rtsp) or service URL (onvif)")
    username: Annotated[str, Field(max_length=128)] | None = None
    password: Annotated[str, Field(max_length=256)] | None = None
    transport: Transport = "tcp"
    media_transport: MediaTransport | None = Field(default=None, description=MEDIA_TRANSPORT_DOC)
    manufacturer: Annotated[str, Field(max_length=64)] | None = None
    model: Annotated[str, Field(max_length=64)] | None = None
    firmware: Annotated[str, Field(max_length=64)] | None = None
    ip: Annotated[str, Field(max_length=64)] | None = None
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    org: OrgCode | None = None
    channel_name: Name | None = Field(
        default=None, description="Name of the channel an RTSP device gets (default: its name)"
    )


class DeviceUpdate(_In):
    name: Name | None = None
    url: Url | None = None
    username: Annotated[str, Field(max_length=128)] | None = None
    password: Annotated[str, Field(max_length=256)] | None = None
    transport: Transport | None = None
    media_transport: MediaTransport | None = Field(default=None, description=MEDIA_TRANSPORT_DOC)
    manufacturer: Annotated[str, Field(max_length=64)] | None = None
    model: Annotated[str, Field(max_length=64)] | None = None
    ip: Annotated[str, Field(max_length=64)] | None = None
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    org: OrgCode | None = None
    enabled: bool | None = None


class DeviceView(BaseModel):
    id: str
    name: str
    kind: str
    protocol: str
    url: str | None = Field(description="Without credentials")
    username: str | None
    has_password: bool
    transport: str
    media_transport: str | None = Field(
        default=None,
        description="GB/T 28181 devices: the media transport set for the device; null: the "
        "platform default",
    )
    manufacturer: str | None
    model: str | None
    firmware: str | None
    ip: str | None
    port: int | None
    org: str | None
    status: str
    status_reason: str | None
    status_since: datetime | None
    enabled: bool
    channel_count: int
    created_at: datetime
    updated_at: datetime


class ChannelCreate(_In):
    id: GbIdStr | None = Field(default=None, description="20-digit GB ID; generated when absent")
    device: GbIdStr
    remote_id: Annotated[str, Field(max_length=64)] | None = None
    name: Name
    longitude: Longitude | None = None
    latitude: Latitude | None = None
    direction: Direction | None = None
    address: Annotated[str, Field(max_length=256)] | None = None
    point_class: PointClass = 3
    ptz_type: PtzType = "fixed"
    org: OrgCode | None = None
    grid: OrgCode | None = None
    stream_url: Url | None = None


class ChannelUpdate(_In):
    name: Name | None = None
    remote_id: Annotated[str, Field(max_length=64)] | None = None
    longitude: Longitude | None = None
    latitude: Latitude | None = None
    direction: Direction | None = None
    address: Annotated[str, Field(max_length=256)] | None = None
    point_class: PointClass | None = None
    ptz_type: PtzType | None = None
    org: OrgCode | None = None
    grid: OrgCode | None = None
    stream_url: Url | None = None
    enabled: bool | None = None
    retention_days: RetentionDays | None = Field(
        default=None, description="Days recordings are kept; null: the platform default"
    )


class ChannelView(BaseModel):
    id: str
    device_id: str
    remote_id: str | None
    name: str
    longitude: float | None
    latitude: float | None
    direction: int | None
    address: str | None
    point_class: int
    ptz_type: str
    ptz: bool = Field(description="Whether the channel can be steered")
    stream_url: str | None = Field(description="Without credentials")
    org: str | None
    grid: str | None
    status: str
    status_reason: str | None
    status_since: datetime | None
    enabled: bool
    retention_days: int | None = Field(
        default=None, description="Days recordings are kept; null: the platform default"
    )
    created_at: datetime
    updated_at: datetime


class ImportRowError(BaseModel):
    row: int = Field(description="Line in the sheet (the header is line 1)")
    column: str | None = Field(description="The column as headed in the sheet")
    message: str


class ImportResult(BaseModel):
    rows: int
    devices_created: int
    channels_created: int
    channels_updated: int
    ignored_columns: list[str]
