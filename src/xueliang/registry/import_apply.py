"""Applying a register sheet's validated rows to the registry: every row checked against the
registry and the caller's area, then the devices and channels created or updated in bulk
statements, and the report of what was done.

:class:`ImportApplyMixin` is a part of :class:`~.importer.RegisterIO`, whose state it uses
(declared here, set up there); the rows come from :mod:`.import_rows`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from xueliang.access.principal import Principal
from xueliang.core.clock import Clock
from xueliang.core.errors import InvalidInput
from xueliang.core.gbcode import CHANNEL_TYPE, DEVICE_KIND_TYPE
from xueliang.core.secretbox import SecretBox
from xueliang.registry.common import IdAllocator, IdPolicy, split_credentials
from xueliang.registry.import_rows import SheetRow, _dump
from xueliang.registry.schemas import ImportResult, ImportRowError
from xueliang.store.models import Channel, Device, Org


@dataclass
class _DevicePlan:
    gb_id: str | None
    first_line: int
    values: dict[str, Any]
    lines: list[int] = field(default_factory=list)
    pk: int | None = None


class ImportApplyMixin:
    """The write half of a sheet import: check the rows, then create and update."""

    _clock: Clock
    _secrets: SecretBox
    _ids: IdPolicy

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


def _gb_only(fail: Callable[[int, str | None, str], None], line: int, protocol: str) -> None:
    """A media transport is a GB/T 28181 device's setting."""
    if protocol != "gb28181":
        fail(line, "media_transport", f"applies to gb28181 devices only, not to {protocol}")


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
