"""Reading and validating a register sheet (the integrator's 点位表): its columns, what their
cells may hold, and the sheet's lines turned into typed rows, each problem reported by line and
column.

Nothing is written here; :mod:`.import_apply` applies the rows, :mod:`.importer` is the entry
point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from xueliang.core.errors import InvalidInput
from xueliang.registry.schemas import (
    DeviceKind,
    Direction,
    GbIdStr,
    ImportRowError,
    Latitude,
    Longitude,
    MediaTransport,
    Name,
    OrgCode,
    PointClass,
    Protocol,
    PtzType,
)
from xueliang.registry.sheet import detect_format, read_sheet


@dataclass(frozen=True, slots=True)
class SheetColumn:
    key: str
    zh: str
    aliases: tuple[str, ...] = ()


COLUMNS: tuple[SheetColumn, ...] = (
    SheetColumn("channel_id", "通道编码", ("id", "国标编码", "点位编码", "通道国标编码")),
    SheetColumn("channel_name", "点位名称", ("name", "名称", "通道名称")),
    SheetColumn("device_id", "设备编码", ("设备国标编码",)),
    SheetColumn("device_name", "设备名称", ()),
    SheetColumn("device_kind", "设备类型", ("kind",)),
    SheetColumn("protocol", "接入协议", ("协议",)),
    SheetColumn("url", "取流地址", ("stream_url", "视频流地址", "rtsp地址")),
    SheetColumn("username", "用户名", ()),
    SheetColumn("password", "密码", ()),
    SheetColumn("remote_id", "设备侧编码", ()),
    SheetColumn("org", "组织编码", ("行政区划", "行政区划代码", "区划编码")),
    SheetColumn("grid", "网格编码", ("网格",)),
    SheetColumn("longitude", "经度", ("lon", "lng")),
    SheetColumn("latitude", "纬度", ("lat",)),
    SheetColumn("direction", "方向", ("朝向",)),
    SheetColumn("address", "安装地址", ("地址", "安装位置")),
    SheetColumn("point_class", "点位类别", ("点位类型", "class")),
    SheetColumn("ptz_type", "云台类型", ("摄像机类型", "ptz")),
    # GB/T 28181 devices: how they are asked to send media; blank: the platform default.
    SheetColumn("media_transport", "媒体传输", ("streammode", "stream_mode", "取流方式")),
)
_BY_NAME: dict[str, str] = {}
for _c in COLUMNS:
    for _n in (_c.key, _c.zh, *_c.aliases):
        _BY_NAME[_n.strip().lower()] = _c.key
EXPORT_KEYS = [c.key for c in COLUMNS if c.key != "password"]

_PTZ = {
    "1": "dome",
    "球机": "dome",
    "2": "half_dome",
    "半球": "half_dome",
    "3": "fixed",
    "枪机": "fixed",
    "固定枪机": "fixed",
    "4": "remote_fixed",
    "遥控枪机": "remote_fixed",
    "0": "unknown",
    "未知": "unknown",
}
_CLASS = {"一类": 1, "二类": 2, "三类": 3}
_KIND = {"编码器": "encoder", "平台": "platform", "下级平台": "platform", "摄像机": "camera"}
_PROTOCOL = {"国标": "gb28181", "gb/t 28181": "gb28181", "gb28181": "gb28181", "推流": "push"}
# Spaces, "_" and "-" are dropped before the look-up; "平台默认" and the like: no setting.
_MEDIA = {
    "udp": "udp",
    "tcppassive": "tcp-passive",
    "tcp被动": "tcp-passive",
    "被动": "tcp-passive",
    "tcpactive": "tcp-active",
    "tcp主动": "tcp-active",
    "主动": "tcp-active",
}
_MEDIA_DEFAULT = frozenset({"default", "平台默认", "默认"})


class SheetRow(BaseModel):
    """One line of the sheet; blank cells arrive as None."""

    model_config = ConfigDict(extra="forbid")

    channel_id: GbIdStr | None = None
    channel_name: Name
    device_id: GbIdStr | None = None
    device_name: Name | None = None
    device_kind: DeviceKind | None = None
    protocol: Protocol | None = None
    url: str | None = Field(default=None, max_length=1024)
    username: str | None = Field(default=None, max_length=128)
    password: str | None = Field(default=None, max_length=256)
    remote_id: str | None = Field(default=None, max_length=64)
    org: OrgCode | None = None
    grid: OrgCode | None = None
    longitude: Longitude | None = None
    latitude: Latitude | None = None
    direction: Direction | None = None
    address: str | None = Field(default=None, max_length=256)
    point_class: PointClass | None = None
    ptz_type: PtzType | None = None
    media_transport: MediaTransport | None = None

    @field_validator("ptz_type", mode="before")
    @classmethod
    def _ptz(cls, v: Any) -> Any:
        return _PTZ.get(str(v).strip().lower(), str(v).strip().lower()) if v is not None else v

    @field_validator("point_class", mode="before")
    @classmethod
    def _class(cls, v: Any) -> Any:
        return _CLASS.get(str(v).strip(), v) if v is not None else v

    @field_validator("device_kind", mode="before")
    @classmethod
    def _kind(cls, v: Any) -> Any:
        return _KIND.get(str(v).strip(), str(v).strip().lower()) if v is not None else v

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol(cls, v: Any) -> Any:
        return _PROTOCOL.get(str(v).strip().lower(), str(v).strip().lower()) if v is not None else v

    @field_validator("media_transport", mode="before")
    @classmethod
    def _media(cls, v: Any) -> Any:
        if v is None:
            return v
        text = str(v).strip().lower()
        if text in _MEDIA_DEFAULT:
            return None
        return _MEDIA.get("".join(c for c in text if c not in " _-"), text)


class SheetRows(NamedTuple):
    """A sheet read: its valid rows by line, the problems found so far, the header as written
    for each column key, and the header's names that match no column (ignored)."""

    parsed: list[tuple[int, SheetRow]]
    errors: list[ImportRowError]
    header_of: dict[str, str]
    ignored: list[str]


def read_rows(data: bytes, filename: str | None) -> SheetRows:
    """Read the sheet and validate every line; a bad header or a sheet without rows raises."""
    sheet = read_sheet(data, detect_format(filename, data))
    columns: list[str | None] = []
    errors: list[ImportRowError] = []
    ignored: list[str] = []
    for name in sheet.header:
        key = _BY_NAME.get(name.strip().lower())
        if key is None and name:
            ignored.append(name)
        if key is not None and key in columns:
            errors.append(ImportRowError(row=1, column=name, message="column appears twice"))
        columns.append(key)
    if "channel_name" not in columns:
        errors.append(
            ImportRowError(
                row=1, column=None, message="a channel_name (点位名称) column is required"
            )
        )
    if errors:
        raise InvalidInput("the sheet's header is not valid", details=_dump(errors))
    header_of = {k: sheet.header[i] for i, k in enumerate(columns) if k is not None}

    parsed: list[tuple[int, SheetRow]] = []
    for line, cells in sheet.rows:
        values = {
            key: cells[i]
            for i, key in enumerate(columns)
            if key is not None and i < len(cells) and cells[i] != ""
        }
        try:
            parsed.append((line, SheetRow.model_validate(values)))
        except ValidationError as exc:
            for err in exc.errors():
                key = str(err["loc"][0]) if err["loc"] else None
                errors.append(
                    ImportRowError(
                        row=line, column=header_of.get(key or "", key), message=err["msg"]
                    )
                )
    if not parsed and not errors:
        raise InvalidInput("the sheet has no rows")
    return SheetRows(parsed, errors, header_of, ignored)


def _dump(errors: list[ImportRowError]) -> list[dict[str, Any]]:
    return [e.model_dump() for e in errors[:1000]]
