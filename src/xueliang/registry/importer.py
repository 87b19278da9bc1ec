"""Import and export of the camera register as a sheet (the integrator's 点位表).

Import is all or nothing: every row is validated first and every problem is reported by line
and column; only a clean sheet is written, in one transaction, with bulk statements.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, aliased

from xueliang.access.audit import AuditLog
from xueliang.access.permissions import Permission
from xueliang.access.principal import Principal
from xueliang.core.clock import Clock
from xueliang.core.errors import InvalidInput
from xueliang.core.events import Signal, announces
from xueliang.core.gbcode import CHANNEL_TYPE, DEVICE_KIND_TYPE
from xueliang.core.secretbox import SecretBox
from xueliang.registry.common import IdAllocator, IdPolicy, split_credentials
from xueliang.registry.schemas import (
    DeviceKind,
    Direction,
    GbIdStr,
    ImportResult,
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
from xueliang.registry.sheet import SheetFormat, detect_format, read_sheet, write_sheet
from xueliang.store.db import Database
from xueliang.store.models import Channel, Device, Org


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


@dataclass
class _DevicePlan:
    gb_id: str | None
    first_line: int
    values: dict[str, Any]
    lines: list[int] = field(default_factory=list)
    pk: int | None = None


class RegisterIO:
    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        clock: Clock,
        secrets: SecretBox,
        ids: IdPolicy,
        *,
        changed: Signal | None = None,
    ) -> None:
        self.changed = changed
        self._db = db
        self._audit = audit
        self._clock = clock
        self._secrets = secrets
        self._ids = ids

    # --- import ------------------------------------------------------------------------------

    @announces
    def import_sheet(
        self, principal: Principal, data: bytes, *, filename: str | None = None
    ) -> ImportResult:
        principal.require(Permission.REGISTRY_WRITE)
        # The name is the client's; it goes into the audit record, where NUL cannot.
        filename = filename.replace("\x00", "") if filename else filename
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
        with self._db.transaction() as s:
            result = self._apply(s, principal, parsed, errors, header_of)
            result.ignored_columns = ignored
            self._audit.append(
                s,
                principal,
                "registry.import",
                target="registry",
                detail={"file": filename or "", **result.model_dump()},
            )
        return result

    def _apply(
        self,
        s: Session,
        principal: Principal,
        parsed: list[tuple[int, SheetRow]],
        errors: list[ImportRowError],
        header_of: dict[str, str],
    ) -> ImportResult:
        def fail(line: int, key: str | None, message: str) -> None:
            errors.append(
                ImportRowError(row=line, column=header_of.get(key or "", key), message=message)
            )

        # Organisations and grids named in the sheet, each checked against the caller's scope.
        codes = {r.org for _, r in parsed if r.org} | {r.grid for _, r in parsed if r.grid}
        orgs = (
            {o.code: o for o in s.scalars(select(Org).where(Org.code.in_(codes)))} if codes else {}
        )
        channel_ids = [r.channel_id for _, r in parsed if r.channel_id]
        existing = _existing_channels(s, channel_ids)
        device_ids = {r.device_id for _, r in parsed if r.device_id}
        devices_by_id = (
            {d.gb_id: d for d in s.scalars(select(Device).where(Device.gb_id.in_(device_ids)))}
            if device_ids
            else {}
        )
        visible_channels = _visible(s, principal, [c.pk for c in existing.values()])

        seen_channels: dict[str, int] = {}
        plans: dict[str, _DevicePlan] = {}
        singles: list[tuple[int, SheetRow]] = []
        for line, row in parsed:
            org = orgs.get(row.org) if row.org else None
            if row.org and org is None:
                fail(line, "org", f"organisation {row.org} does not exist")
            elif not principal.scope.covers_path(org.path if org else None):
                fail(line, "org", "outside your area" if org else "an organisation is required")
            if row.grid:
                grid = orgs.get(row.grid)
                if grid is None:
                    fail(line, "grid", f"grid {row.grid} does not exist")
                elif grid.level != "grid":
                    fail(line, "grid", f"{row.grid} is a {grid.level}, not a grid")
                elif org is not None and not grid.path.startswith(org.path):
                    fail(line, "grid", f"grid {row.grid} is not within {row.org}")
            if row.channel_id:
                if row.channel_id in seen_channels:
                    fail(line, "channel_id", f"also on line {seen_channels[row.channel_id]}")
                seen_channels[row.channel_id] = line
                current = existing.get(row.channel_id)
                if current is not None and current.pk not in visible_channels:
                    fail(line, "channel_id", f"channel {row.channel_id} is outside your area")
            if row.url:
                try:
                    split_credentials(row.url)
                except InvalidInput as exc:
                    fail(line, "url", exc.message)
            if row.media_transport is not None and not row.device_id:
                _gb_only(fail, line, row.protocol or "rtsp")
            if row.device_id:
                device_values = _device_values(row)
                plan = plans.get(row.device_id)
                if plan is None:
                    # A new NVR sits where its first row's channel sits; its channels may
                    # each lie elsewhere, so the organisation is not compared across rows.
                    device_values["org"] = row.org
                    plans[row.device_id] = _DevicePlan(row.device_id, line, device_values, [line])
                else:
                    plan.lines.append(line)
                    for k, v in device_values.items():
                        if plan.values.get(k) not in (None, v):
                            fail(
                                line, k, f"differs from line {plan.first_line} for the same device"
                            )
                        plan.values.setdefault(k, v)
                known = devices_by_id.get(row.device_id)
                if known is not None and not _device_visible(s, principal, known):
                    fail(line, "device_id", f"device {row.device_id} is outside your area")
            elif row.channel_id not in existing:
                if (row.protocol or "rtsp") in ("rtsp", "onvif") and not row.url:
                    fail(line, "url", "a new rtsp/onvif camera needs a stream URL")
                singles.append((line, row))
        rows_at = dict(parsed)
        for gb_id, plan in plans.items():
            known = devices_by_id.get(gb_id)
            protocol = known.protocol if known else plan.values.get("protocol") or "rtsp"
            for line in plan.lines:
                if rows_at[line].media_transport is not None:
                    _gb_only(fail, line, protocol)
        if errors:
            errors.sort(key=lambda e: (e.row, e.column or ""))
            raise InvalidInput(
                f"{len(errors)} problem(s) in the sheet; nothing was imported",
                details=_dump(errors),
            )

        now = self._clock.now()
        ids = IdAllocator(s, self._ids)
        for gb_id in [*channel_ids, *device_ids]:
            ids.reserve(gb_id)

        # Devices: create the new ones in one statement, then map every row to a device pk.
        new_devices: list[dict[str, Any]] = []
        device_pk_for_line: dict[int, int] = {}
        for gb_id, plan in plans.items():
            known = devices_by_id.get(gb_id)
            if known is not None:
                plan.pk = known.pk
                continue
            new_devices.append(self._device_row(gb_id, plan.values, orgs, now, single=False))
        single_rows: list[tuple[int, dict[str, Any]]] = []
        for line, row in singles:
            values = _device_values(row)
            values.setdefault("device_name", row.channel_name)
            values["org"] = row.org
            gb_id = ids.next(
                DEVICE_KIND_TYPE.get(values.get("device_kind") or "ipc", "132"), Device
            )
            single_rows.append((line, self._device_row(gb_id, values, orgs, now, single=True)))
        created = 0
        all_new = new_devices + [d for _, d in single_rows]
        if all_new:
            returned = s.execute(insert(Device).returning(Device.pk, Device.gb_id), all_new)
            pk_of = {gb: pk for pk, gb in returned}
            created = len(all_new)
            for plan in plans.values():
                if plan.pk is None and plan.gb_id is not None:
                    plan.pk = pk_of[plan.gb_id]
            for line, d in single_rows:
                device_pk_for_line[line] = pk_of[d["gb_id"]]
        for plan in plans.values():
            for line in plan.lines:
                assert plan.pk is not None
                device_pk_for_line[line] = plan.pk

        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for line, row in parsed:
            values = _channel_values(row, orgs, single=not row.device_id)
            current = existing.get(row.channel_id) if row.channel_id else None
            if current is not None:
                values["pk"] = current.pk
                if line in device_pk_for_line:
                    values["device_pk"] = device_pk_for_line[line]
                values["updated_at"] = now
                updates.append(values)
            else:
                values.update(
                    gb_id=row.channel_id or ids.next(CHANNEL_TYPE, Channel),
                    device_pk=device_pk_for_line[line],
                    status="offline",
                    status_reason="not yet connected",
                    status_since=now,
                    created_at=now,
                    updated_at=now,
                )
                values.setdefault("point_class", 3)
                values.setdefault("ptz_type", "fixed")
                inserts.append(values)
        if inserts:
            s.execute(insert(Channel), _uniform(inserts))
        for chunk in _groups_by_keys(updates):
            s.execute(update(Channel), chunk)
        return ImportResult(
            rows=len(parsed),
            devices_created=created,
            channels_created=len(inserts),
            channels_updated=len(updates),
            ignored_columns=[],
        )

    def _device_row(
        self, gb_id: str, values: dict[str, Any], orgs: dict[str, Org], now: Any, *, single: bool
    ) -> dict[str, Any]:
        url, url_user, url_password = (
            split_credentials(values.get("url")) if single else (None, None, None)
        )
        password = values.get("password") or url_password
        org = orgs.get(values.get("org") or "")
        return {
            "gb_id": gb_id,
            "name": values.get("device_name") or gb_id,
            "kind": values.get("device_kind") or "ipc",
            "protocol": values.get("protocol") or "rtsp",
            "url": url,
            "username": values.get("username") or url_user,
            "password_enc": self._secrets.seal(password) if password else None,
            "transport": "tcp",
            "media_transport": values.get("media_transport"),
            "org_pk": org.pk if org else None,
            "status": "offline",
            "status_reason": "not yet connected",
            "status_since": now,
            "enabled": True,
            "created_at": now,
            "updated_at": now,
        }

    # --- export ------------------------------------------------------------------------------

    def export_sheet(
        self, principal: Principal, *, fmt: SheetFormat = "xlsx", lang: Literal["zh", "en"] = "zh"
    ) -> bytes:
        principal.require(Permission.REGISTRY_READ)
        org_a, grid_a = aliased(Org), aliased(Org)
        stmt = (
            select(Channel, Device, org_a.code, grid_a.code)
            .join(Device, Channel.device_pk == Device.pk)
            .outerjoin(org_a, Channel.org_pk == org_a.pk)
            .outerjoin(grid_a, Channel.grid_pk == grid_a.pk)
            .where(principal.scope.channel_filter())
            .order_by(Device.gb_id, Channel.gb_id)
        )
        header = [c.zh if lang == "zh" else c.key for c in COLUMNS if c.key != "password"]
        rows: list[list[object]] = []
        with self._db.transaction() as s:
            for ch, dev, org_code, grid_code in s.execute(stmt):
                record = {
                    "channel_id": ch.gb_id,
                    "channel_name": ch.name,
                    "device_id": dev.gb_id,
                    "device_name": dev.name,
                    "device_kind": dev.kind,
                    "protocol": dev.protocol,
                    "url": ch.stream_url or split_credentials(dev.url)[0],
                    "username": dev.username,
                    "remote_id": ch.remote_id,
                    "org": org_code,
                    "grid": grid_code,
                    "longitude": ch.longitude,
                    "latitude": ch.latitude,
                    "direction": ch.direction,
                    "address": ch.address,
                    "point_class": ch.point_class,
                    "ptz_type": ch.ptz_type,
                    "media_transport": dev.media_transport,
                }
                rows.append([record[k] for k in EXPORT_KEYS])
            self._audit.append(
                s,
                principal,
                "registry.export",
                target="registry",
                detail={"format": fmt, "rows": len(rows)},
            )
        return write_sheet(header, rows, fmt)


def _gb_only(fail: Callable[[int, str | None, str], None], line: int, protocol: str) -> None:
    """A media transport is a GB/T 28181 device's setting."""
    if protocol != "gb28181":
        fail(line, "media_transport", f"applies to gb28181 devices only, not to {protocol}")


def _dump(errors: list[ImportRowError]) -> list[dict[str, Any]]:
    return [e.model_dump() for e in errors[:1000]]


def _device_values(row: SheetRow) -> dict[str, Any]:
    values = {
        "device_name": row.device_name,
        "device_kind": row.device_kind,
        "protocol": row.protocol,
        "username": row.username,
        "password": row.password,
        "media_transport": row.media_transport,
    }
    if not row.device_id:
        values["url"] = row.url
    return {k: v for k, v in values.items() if v is not None}


def _channel_values(row: SheetRow, orgs: dict[str, Org], *, single: bool) -> dict[str, Any]:
    values: dict[str, Any] = {"name": row.channel_name}
    for key in (
        "remote_id",
        "longitude",
        "latitude",
        "direction",
        "address",
        "point_class",
        "ptz_type",
    ):
        value = getattr(row, key)
        if value is not None:
            values[key] = value
    if row.org:
        values["org_pk"] = orgs[row.org].pk
    if row.grid:
        values["grid_pk"] = orgs[row.grid].pk
    if row.url and not single:
        values["stream_url"] = split_credentials(row.url)[0]
    return values


_CHANNEL_DEFAULTS: dict[str, Any] = {
    "remote_id": None,
    "longitude": None,
    "latitude": None,
    "direction": None,
    "address": None,
    "org_pk": None,
    "grid_pk": None,
    "stream_url": None,
}


def _uniform(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give every row the same keys so one executemany statement covers them all."""
    return [{**_CHANNEL_DEFAULTS, **r} for r in rows]


def _groups_by_keys(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(sorted(r)), []).append(r)
    return list(groups.values())


def _existing_channels(s: Session, gb_ids: list[str]) -> dict[str, Channel]:
    found: dict[str, Channel] = {}
    for i in range(0, len(gb_ids), 500):
        for c in s.scalars(select(Channel).where(Channel.gb_id.in_(gb_ids[i : i + 500]))):
            found[c.gb_id] = c
    return found


def _visible(s: Session, principal: Principal, pks: list[int]) -> set[int]:
    if principal.scope.everything:
        return set(pks)
    seen: set[int] = set()
    for i in range(0, len(pks), 500):
        seen.update(
            s.scalars(
                select(Channel.pk).where(
                    Channel.pk.in_(pks[i : i + 500]), principal.scope.channel_filter()
                )
            )
        )
    return seen


def _device_visible(s: Session, principal: Principal, device: Device) -> bool:
    if principal.scope.everything:
        return True
    return (
        s.scalar(select(Device.pk).where(Device.pk == device.pk, principal.scope.device_filter()))
        is not None
    )
