"""Import and export of the camera register as a sheet (the integrator's 点位表).

Import is all or nothing: every row is validated first and every problem is reported by line
and column; only a clean sheet is written, in one transaction, with bulk statements.

This module is the entry point: reading and validating the sheet lives in :mod:`.import_rows`,
applying its rows to the registry in :mod:`.import_apply`.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import aliased

from xueliang.access.audit import AuditLog
from xueliang.access.permissions import Permission
from xueliang.access.principal import Principal
from xueliang.core.clock import Clock
from xueliang.core.events import Signal, announces
from xueliang.core.secretbox import SecretBox
from xueliang.registry.common import IdPolicy, split_credentials
from xueliang.registry.import_apply import ImportApplyMixin
from xueliang.registry.import_rows import COLUMNS, EXPORT_KEYS, SheetColumn, SheetRow, read_rows
from xueliang.registry.schemas import ImportResult
from xueliang.registry.sheet import SheetFormat, write_sheet
from xueliang.store.db import Database
from xueliang.store.models import Channel, Device, Org

# Re-exported: the columns were defined here before they moved to .import_rows.
__all__ = ["COLUMNS", "EXPORT_KEYS", "RegisterIO", "SheetColumn", "SheetRow"]


class RegisterIO(ImportApplyMixin):
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
        parsed, errors, header_of, ignored = read_rows(data, filename)
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
